//! What the HTTP layer costs: a DUIS request POSTed to `/api/v1/serviceS`
//! on loopback, against the same handler called directly (the baseline).
//!
//! The handler parses the document with roxmltree and answers an I99
//! acknowledgement, so the figures isolate the service shell (admission,
//! body limit, task hand-off, metrics, HTTP/1.1 on loopback), not the 6.23
//! pipeline.
#![allow(missing_docs, dead_code, unused_imports)]

#[path = "../src/config.rs"]
mod config;
#[path = "../src/serve/mod.rs"]
mod serve;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ecos_party::api::BoxFuture;
use ecos_party::{ServiceRequestHandler, SyncAnswer};
use serve::duis::{self, RequestEcho, SR_NS};

struct ParseAndAck;

impl ServiceRequestHandler for ParseAndAck {
    fn submit<'a>(&'a self, body: &'a [u8], at: jiff::Timestamp) -> BoxFuture<'a, SyncAnswer> {
        Box::pin(async move {
            let ok = std::str::from_utf8(body)
                .ok()
                .and_then(|t| roxmltree::Document::parse(t).ok())
                .is_some_and(|d| d.root_element().has_tag_name((SR_NS, "Request")));
            let echo = RequestEcho::read(body);
            SyncAnswer {
                http_status: 200,
                body: duis::error_acknowledgement(if ok { "I99" } else { "E100" }, &echo, at),
            }
        })
    }
}

fn request() -> Vec<u8> {
    format!(
        "<sr:Request xmlns:sr=\"{SR_NS}\" schemaVersion=\"5.4\"><sr:Header>\
         <sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID>\
         <sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>6.23</sr:ServiceReference>\
         <sr:ServiceReferenceVariant>6.23</sr:ServiceReferenceVariant></sr:Header><sr:Body/></sr:Request>"
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let handler: Arc<dyn ServiceRequestHandler> = Arc::new(ParseAndAck);
    let mut cfg = config::Config::default();
    cfg.http.listen = "127.0.0.1:0".parse().expect("addr");
    let base = rt.block_on(async {
        let server = serve::Server::bind(
            serve::Settings::from(&cfg),
            None,
            serve::Parts {
                handler: Some(handler.clone()),
                ..serve::Parts::default()
            },
        )
        .await
        .expect("bind");
        let base = format!("http://{}/api/v1/serviceS", server.local_addr());
        tokio::spawn(server.run(std::future::pending()));
        base
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let body = request();

    let mut g = c.benchmark_group("serviceS");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("direct_submit_baseline", |b| {
        b.iter(|| rt.block_on(handler.submit(&body, jiff::Timestamp::now())))
    });
    g.bench_function("http_post_sequential", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client
                    .post(&base)
                    .header("content-type", "application/xml")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(r.status(), 200);
                r.bytes().await.expect("body")
            })
        })
    });
    const N: usize = 32;
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("http_post_32_concurrent", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..N {
                    let (client, base, body) = (client.clone(), base.clone(), body.clone());
                    set.spawn(async move {
                        let r = client
                            .post(&base)
                            .header("content-type", "application/xml")
                            .body(body)
                            .send()
                            .await
                            .expect("POST");
                        assert_eq!(r.status(), 200);
                        r.bytes().await.expect("body").len()
                    });
                }
                while set.join_next().await.is_some() {}
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
