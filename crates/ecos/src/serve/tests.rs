//! In-process tests over real HTTP on loopback (127.0.0.1:0), with a small
//! real request handler: it parses the posted XML with roxmltree, refuses
//! what is not a DUIS request with an error acknowledgement, answers I99
//! echoing the RequestID, and queues an asynchronous I0 response for the
//! request's originator.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ecos_party::api::BoxFuture;
use ecos_party::{ServiceRequestHandler, SyncAnswer};
use tokio::sync::{Semaphore, oneshot};

use super::delivery::{OutboundMessage, OutboundQueue};
use super::duis::{self, RequestEcho, SR_NS};
use super::*;

const TOKEN: &str = "test-admin-token-0123456789";

/// The test handler.
struct XmlHandler {
    outbound: Option<Arc<dyn OutboundQueue>>,
    /// When set, each request waits for one permit (to hold work in flight).
    gate: Option<Arc<Semaphore>>,
    done: AtomicUsize,
}

impl XmlHandler {
    fn new(outbound: Option<Arc<dyn OutboundQueue>>, gate: Option<Arc<Semaphore>>) -> Arc<Self> {
        Arc::new(XmlHandler {
            outbound,
            gate,
            done: AtomicUsize::new(0),
        })
    }

    async fn answer(&self, body: &[u8], at: jiff::Timestamp) -> SyncAnswer {
        let refuse = |echo: &RequestEcho| SyncAnswer {
            http_status: 200,
            body: duis::error_acknowledgement("E100", echo, at),
        };
        let Ok(text) = std::str::from_utf8(body) else {
            return refuse(&RequestEcho::default());
        };
        let Ok(doc) = roxmltree::Document::parse(text) else {
            return refuse(&RequestEcho::default());
        };
        if !doc.root_element().has_tag_name((SR_NS, "Request")) {
            return refuse(&RequestEcho::default());
        }
        let echo = RequestEcho::read(body);
        let (Some(id), Some(sr)) = (&echo.request_id, &echo.service_reference) else {
            return refuse(&echo);
        };
        let originator = id.split(':').next().unwrap_or("");
        if let Some(q) = &self.outbound {
            let device_response = format!(
                "<sr:Response xmlns:sr=\"{SR_NS}\" schemaVersion=\"5.4\"><sr:Header><sr:RequestID>{id}</sr:RequestID>\
                 <sr:ResponseCode>I0</sr:ResponseCode><sr:ResponseDateTime>{}</sr:ResponseDateTime></sr:Header>\
                 <sr:Body><sr:ResponseMessage><sr:ServiceReference>{sr}</sr:ServiceReference>\
                 <sr:ServiceReferenceVariant>{sr}</sr:ServiceReferenceVariant></sr:ResponseMessage></sr:Body></sr:Response>",
                at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            if let Err(e) = q
                .push(OutboundMessage {
                    service_user: originator.into(),
                    body: device_response.into_bytes(),
                })
                .await
            {
                tracing::warn!(error = %e, "test handler: outbound queue refused the response");
                return SyncAnswer {
                    http_status: 503,
                    body: duis::error_acknowledgement("E100", &echo, at),
                };
            }
        }
        // The acknowledgement has the shape of an error acknowledgement with I99.
        SyncAnswer {
            http_status: 200,
            body: duis::error_acknowledgement("I99", &echo, at),
        }
    }
}

impl ServiceRequestHandler for XmlHandler {
    fn submit<'a>(
        &'a self,
        body: &'a [u8],
        received_at: jiff::Timestamp,
    ) -> BoxFuture<'a, SyncAnswer> {
        Box::pin(async move {
            if let Some(g) = &self.gate {
                g.acquire().await.expect("gate open").forget();
            }
            let a = self.answer(body, received_at).await;
            self.done.fetch_add(1, Ordering::SeqCst);
            a
        })
    }
}

fn request(counter: u64) -> String {
    format!(
        "<sr:Request xmlns:sr=\"{SR_NS}\" schemaVersion=\"5.4\"><sr:Header>\
         <sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:{counter}</sr:RequestID>\
         <sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>6.23</sr:ServiceReference>\
         <sr:ServiceReferenceVariant>6.23</sr:ServiceReferenceVariant></sr:Header><sr:Body/></sr:Request>"
    )
}

fn settings(f: impl FnOnce(&mut Config)) -> Settings {
    let mut c = Config::default();
    c.http.listen = "127.0.0.1:0".parse().expect("address");
    c.http.shutdown_grace_secs = 10;
    f(&mut c);
    c.validate().expect("valid test configuration");
    Settings::from(&c)
}

struct Running {
    base: String,
    handle: ServiceHandle,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("server task")
    }
}

async fn start(settings: Settings, parts: Parts) -> Running {
    let server = Server::bind(settings, None, parts).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let handle = server.handle();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        handle,
        stop: Some(tx),
        task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn post(
    c: &reqwest::Client,
    base: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    c.post(format!("{base}/api/v1/serviceS"))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .expect("POST")
}

async fn code_of(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, duis::response_code(text.as_bytes()), text)
}

#[tokio::test]
async fn accepts_a_request_answers_i99_and_delivers_the_async_response_with_retries() {
    // A service user endpoint on loopback that fails twice, then accepts.
    let received: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (r2, c2) = (received.clone(), calls.clone());
    let endpoint = axum::Router::new().route(
        "/duis",
        axum::routing::post(move |body: String| {
            let (r, c) = (r2.clone(), c2.clone());
            async move {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    r.lock().expect("lock").push(body);
                    StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/duis", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, endpoint).await });

    let queue: Arc<dyn OutboundQueue> = Arc::new(MemoryQueue::new(10, 10));
    let s = settings(|c| {
        c.delivery.initial_backoff_ms = 20;
        c.delivery.max_backoff_ms = 100;
        c.delivery.endpoints.insert("90B3D51F30010000".into(), url);
    });
    let run = start(
        s,
        Parts {
            handler: Some(XmlHandler::new(Some(queue.clone()), None)),
            outbound: Some(queue),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let (status, code, text) = code_of(post(&c, &run.base, request(1006)).await).await;
    assert_eq!((status, code.as_deref()), (200, Some("I99")), "{text}");
    assert!(text.contains(":1006</sr:RequestID>"), "{text}");

    // Delivered after two failures.
    let mut waited = 0;
    while received.lock().expect("lock").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
        assert!(
            waited < 250,
            "not delivered; {} attempts",
            calls.load(Ordering::SeqCst)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let got = received.lock().expect("lock")[0].clone();
    assert_eq!(duis::response_code(got.as_bytes()).as_deref(), Some("I0"));

    // Also readable by polling, with its delivery state.
    let polled: serde_json::Value = c
        .get(format!(
            "{}/api/v1/responses?since=0&service_user=90-B3-D5-1F-30-01-00-00",
            run.base
        ))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let items = polled["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{polled}");
    assert_eq!(items[0]["delivery"]["state"], "delivered");
    assert_eq!(items[0]["body"].as_str(), Some(got.as_str()));
    let next = polled["next_cursor"].as_u64().expect("cursor");
    let after: serde_json::Value = c
        .get(format!("{}/api/v1/responses?since={next}", run.base))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(after["items"].as_array().map(Vec::len), Some(0));
    let bad = c
        .get(format!("{}/api/v1/responses?since=x", run.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn oversized_malformed_and_non_xml_bodies_get_duis_errors_and_the_service_stays_up() {
    let run = start(
        settings(|c| c.http.body_limit_bytes = 4096),
        Parts {
            handler: Some(XmlHandler::new(None, None)),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    // Declared too large.
    let big = format!("<a>{}</a>", "x".repeat(10_000));
    let (status, code, text) = code_of(post(&c, &run.base, big.clone()).await).await;
    assert_eq!((status, code.as_deref()), (413, Some("E100")), "{text}");
    // Too large without a Content-Length (chunked), over a raw socket.
    let (status, body) = raw_chunked_post(&run.base, big.as_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        duis::response_code(body.as_bytes()).as_deref(),
        Some("E100")
    );
    // Malformed XML: the handler's error acknowledgement.
    let (status, code, _) = code_of(post(&c, &run.base, "<sr:Request><unclosed>").await).await;
    assert_eq!((status, code.as_deref()), (200, Some("E100")));
    let (status, code, _) = code_of(post(&c, &run.base, vec![0xffu8, 0xfe, 0x00]).await).await;
    assert_eq!((status, code.as_deref()), (200, Some("E100")));
    // Not XML by content type.
    let resp = c
        .post(format!("{}/api/v1/serviceS", run.base))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    let (status, code, _) = code_of(resp).await;
    assert_eq!((status, code.as_deref()), (415, Some("E13")));
    // Still up and still answering properly.
    let (status, code, _) = code_of(post(&c, &run.base, request(7)).await).await;
    assert_eq!((status, code.as_deref()), (200, Some("I99")));
    let health = c
        .get(format!("{}/healthz", run.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status(), 200);
    run.stop().await.expect("clean stop");
}

/// POST with `Transfer-Encoding: chunked` (no Content-Length); returns the
/// status and body of the answer.
async fn raw_chunked_post(base: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/serviceS HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/xml\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    for chunk in body.chunks(1000) {
        let _ = s
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = s.write_all(chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn sheds_load_with_503_and_retry_after_when_the_queue_is_full() {
    let gate = Arc::new(Semaphore::new(0));
    let handler = XmlHandler::new(None, Some(gate.clone()));
    let run = start(
        settings(|c| {
            c.http.max_in_flight = 1;
            c.http.max_queued = 1;
            c.http.retry_after_secs = 7;
        }),
        Parts {
            handler: Some(handler.clone()),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let spawn_post = |n: u64| {
        let (c, base) = (c.clone(), run.base.clone());
        tokio::spawn(async move { post(&c, &base, request(n)).await })
    };
    let first = spawn_post(1);
    wait_until(|| run.handle.state.admission.in_flight() == 1).await;
    let second = spawn_post(2);
    wait_until(|| run.handle.state.admission.queued() == 1).await;
    let shed = post(&c, &run.base, request(3)).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(
        shed.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let (_, code, text) = code_of(shed).await;
    assert_eq!(code.as_deref(), Some("E100"), "{text}");
    assert!(
        text.contains(":3</sr:RequestID>") || !text.contains("RequestID"),
        "{text}"
    );
    gate.add_permits(2);
    for h in [first, second] {
        let (status, code, _) = code_of(h.await.expect("task")).await;
        assert_eq!((status, code.as_deref()), (200, Some("I99")));
    }
    assert_eq!(handler.done.load(Ordering::SeqCst), 2);
    run.stop().await.expect("clean stop");
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn an_answer_that_is_late_times_out_but_the_work_finishes() {
    let gate = Arc::new(Semaphore::new(0));
    let handler = XmlHandler::new(None, Some(gate.clone()));
    let run = start(
        settings(|c| c.http.request_timeout_secs = 1),
        Parts {
            handler: Some(handler.clone()),
            ..Parts::default()
        },
    )
    .await;
    let (status, code, text) = code_of(post(&client(), &run.base, request(42)).await).await;
    assert_eq!((status, code.as_deref()), (504, Some("E100")), "{text}");
    assert!(
        text.contains(":42</sr:RequestID>"),
        "the timeout echoes the RequestID: {text}"
    );
    assert_eq!(handler.done.load(Ordering::SeqCst), 0);
    gate.add_permits(1);
    wait_until(|| handler.done.load(Ordering::SeqCst) == 1).await;
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_work_and_refuses_new_connections() {
    let gate = Arc::new(Semaphore::new(0));
    let handler = XmlHandler::new(None, Some(gate.clone()));
    let run = start(
        settings(|_| {}),
        Parts {
            handler: Some(handler.clone()),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let base = run.base.clone();
    let in_flight = tokio::spawn({
        let c = c.clone();
        let base = base.clone();
        async move { post(&c, &base, request(9)).await }
    });
    wait_until(|| run.handle.state.admission.in_flight() == 1).await;
    let state = run.handle.state.clone();
    let stopping = tokio::spawn(run.stop());
    wait_until(|| state.shutting_down.load(Ordering::SeqCst)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown must wait for in-flight work"
    );
    // New connections are refused once shutdown began.
    let fresh = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        fresh.is_err(),
        "a new connection was served during shutdown"
    );
    gate.add_permits(1);
    let (status, code, _) = code_of(in_flight.await.expect("task")).await;
    assert_eq!((status, code.as_deref()), (200, Some("I99")));
    stopping.await.expect("task").expect("clean stop");
    assert_eq!(handler.done.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn readiness_needs_a_handler_and_a_passing_probe() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h2 = healthy.clone();
    let probe: Readiness = Arc::new(move || {
        let ok = h2.load(Ordering::SeqCst);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err("store unreachable".into())
            }
        })
    });
    let run = start(
        settings(|_| {}),
        Parts {
            readiness: Some(probe),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let ready = |c: reqwest::Client, base: String| async move {
        let r = c.get(format!("{base}/readyz")).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("text"))
    };
    let (s, t) = ready(c.clone(), run.base.clone()).await;
    assert_eq!(s, 503);
    assert!(t.contains("no request handler"), "{t}");
    let (status, code, _) = code_of(post(&c, &run.base, request(1)).await).await;
    assert_eq!((status, code.as_deref()), (503, Some("E100")));
    run.handle.install_handler(XmlHandler::new(None, None));
    let (s, t) = ready(c.clone(), run.base.clone()).await;
    assert_eq!(s, 503);
    assert!(t.contains("store unreachable"), "{t}");
    healthy.store(true, Ordering::SeqCst);
    let (s, _) = ready(c.clone(), run.base.clone()).await;
    assert_eq!(s, 200);
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn metrics_are_scraped_and_every_line_parses() {
    let run = start(
        settings(|_| {}),
        Parts {
            handler: Some(XmlHandler::new(None, None)),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    code_of(post(&c, &run.base, request(1)).await).await;
    code_of(post(&c, &run.base, "not xml").await).await;
    let resp = c
        .get(format!("{}/metrics", run.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = resp.text().await.expect("text");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let has = |name: &str, labels: &[(&str, &str)]| {
        samples.iter().any(|(n, l, v)| {
            n == name
                && *v >= 1.0
                && labels
                    .iter()
                    .all(|(k, want)| l.iter().any(|(lk, lv)| lk == k && lv == want))
        })
    };
    assert!(
        has(
            m::REQUESTS_TOTAL,
            &[("outcome", "accepted"), ("reason", "I99")]
        ),
        "{text}"
    );
    assert!(
        has(
            m::REQUESTS_TOTAL,
            &[("outcome", "rejected"), ("reason", "E100")]
        ),
        "{text}"
    );
    assert!(
        has(
            &format!("{}_count", m::STAGE_SECONDS),
            &[("stage", m::STAGE_PROCESS)]
        ),
        "{text}"
    );
    assert!(
        has(
            &format!("{}_bucket", m::STAGE_SECONDS),
            &[("stage", m::STAGE_TOTAL), ("le", "+Inf")]
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("# TYPE {} counter", m::REQUESTS_TOTAL)),
        "{text}"
    );
    assert!(
        text.contains(&format!("# HELP {} ", m::REQUESTS_TOTAL)),
        "{text}"
    );
    assert!(
        samples.iter().any(|(n, _, _)| n == m::QUEUE_DEPTH),
        "{text}"
    );
    run.stop().await.expect("clean stop");
}

type Sample = (String, Vec<(String, String)>, f64);

/// A strict reader of the Prometheus text format 0.0.4: every line is a
/// comment (`# HELP`/`# TYPE` well formed), blank, or a sample
/// `name{label="value",...} value [timestamp]`.
fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    fn is_name(s: &str) -> bool {
        let mut b = s.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
    }
    fn value(s: &str) -> Option<f64> {
        match s {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => s.parse().ok(),
        }
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let parts: Vec<&str> = rest.trim_start().splitn(3, ' ').collect();
            match parts.first() {
                Some(&"HELP") if parts.len() >= 2 && is_name(parts[1]) => {}
                Some(&"TYPE")
                    if parts.len() == 3
                        && is_name(parts[1])
                        && ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&parts[2]) => {}
                Some(&"HELP") | Some(&"TYPE") => return Err(err("malformed HELP/TYPE")),
                _ => {}
            }
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').ok_or_else(|| err("unclosed labels"))?;
                let mut labels = Vec::new();
                let mut s = &line[open + 1..close];
                while !s.is_empty() {
                    let eq = s.find('=').ok_or_else(|| err("label without ="))?;
                    let k = &s[..eq];
                    if !is_name(k) {
                        return Err(err("bad label name"));
                    }
                    let v = s[eq + 1..]
                        .strip_prefix('"')
                        .ok_or_else(|| err("unquoted label value"))?;
                    let mut end = None;
                    let mut esc = false;
                    for (j, ch) in v.char_indices() {
                        match (esc, ch) {
                            (true, _) => esc = false,
                            (false, '\\') => esc = true,
                            (false, '"') => {
                                end = Some(j);
                                break;
                            }
                            _ => {}
                        }
                    }
                    let end = end.ok_or_else(|| err("unterminated label value"))?;
                    labels.push((k.to_string(), v[..end].to_string()));
                    s = &v[end + 1..];
                    s = s.strip_prefix(',').unwrap_or(s);
                }
                (&line[..open], labels, &line[close + 1..])
            }
            None => {
                let sp = line.find(' ').ok_or_else(|| err("no value"))?;
                (&line[..sp], Vec::new(), &line[sp..])
            }
        };
        if !is_name(name) {
            return Err(err("bad metric name"));
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let v = match fields.as_slice() {
            [v] => value(v),
            [v, ts] if ts.parse::<i64>().is_ok() => value(v),
            _ => None,
        }
        .ok_or_else(|| err("bad value"))?;
        out.push((name.to_string(), labels, v));
    }
    if out.is_empty() {
        return Err("no samples".into());
    }
    Ok(out)
}

#[test]
fn the_prometheus_reader_refuses_bad_lines() {
    assert!(parse_prometheus("a_total{x=\"1\"} 3\n").is_ok());
    assert!(parse_prometheus("a_total{x=1} 3\n").is_err());
    assert!(parse_prometheus("a-total 3\n").is_err());
    assert!(parse_prometheus("a_total three\n").is_err());
    assert!(parse_prometheus("# TYPE a_total countr\na_total 1\n").is_err());
}

#[tokio::test]
async fn admin_api_requires_the_bearer_token_and_is_absent_without_one() {
    let queue: Arc<dyn OutboundQueue> = Arc::new(MemoryQueue::new(10, 10));
    let run = start(
        settings(|c| {
            c.admin.token = Some(TOKEN.into());
            // Deliveries to this user fail at once (nothing listens on port 9)
            // and are parked after one attempt.
            c.delivery.max_attempts = 1;
            c.delivery
                .endpoints
                .insert("90B3D51F30030000".into(), "http://127.0.0.1:9/duis".into());
        }),
        Parts {
            handler: Some(XmlHandler::new(Some(queue.clone()), None)),
            outbound: Some(queue.clone()),
            config: Some(Config {
                admin: crate::config::AdminConfig {
                    token: Some(TOKEN.into()),
                    ..Default::default()
                },
                ..Config::default()
            }),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let url = format!("{}/api/admin/v1/status", run.base);
    let none = c.get(&url).send().await.expect("GET");
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = c
        .get(&url)
        .bearer_auth("test-admin-token-0123456788")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let basic = c
        .get(&url)
        .basic_auth("admin", Some(TOKEN))
        .send()
        .await
        .expect("GET");
    assert_eq!(basic.status(), 401);
    let ok = c.get(&url).bearer_auth(TOKEN).send().await.expect("GET");
    assert_eq!(ok.status(), 200);
    let status: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(status["handler_installed"], true);
    // The configuration is shown with the token masked.
    let cfg = c
        .get(format!("{}/api/admin/v1/config", run.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert!(!cfg.contains(TOKEN) && cfg.contains("********"), "{cfg}");
    // Requeue: a message that is not parked is refused with 409.
    let cursor = queue
        .push(OutboundMessage {
            service_user: "90B3D51F30010000".into(),
            body: b"<x/>".to_vec(),
        })
        .await
        .expect("push");
    let r = c
        .post(format!(
            "{}/api/admin/v1/outbound/{cursor}/requeue",
            run.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        r.status(),
        409,
        "a message that is not parked cannot be requeued"
    );
    let parked = queue
        .push(OutboundMessage {
            service_user: "90B3D51F30030000".into(),
            body: b"<y/>".to_vec(),
        })
        .await
        .expect("push");
    let listing = |since: u64| {
        let c = c.clone();
        let url = format!("{}/api/admin/v1/outbound?since={since}", run.base);
        async move {
            let v: serde_json::Value = c
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("json");
            v["items"][0]["state"]["state"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    for _ in 0..500 {
        if listing(parked - 1).await == "parked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(listing(parked - 1).await, "parked");
    let r = c
        .post(format!(
            "{}/api/admin/v1/outbound/{parked}/requeue",
            run.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/api/admin/v1/outbound/999999/requeue", run.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 404);
    run.stop().await.expect("clean stop");

    let run = start(settings(|_| {}), Parts::default()).await;
    let r = c
        .get(format!("{}/api/admin/v1/status", run.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404, "no token configured: no admin API");
    run.stop().await.expect("clean stop");
}

fn openapi_routes() -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(admin::OPENAPI).expect("OpenAPI JSON");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.clone(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_vice_versa() {
    let doc = openapi_routes();
    for (token, expect_admin) in [(Some(TOKEN.to_string()), true), (None, false)] {
        let s = settings(|c| c.admin.token = token.clone());
        let server = Server::bind(s, None, Parts::default()).await.expect("bind");
        let registered: BTreeSet<(String, String)> = router(server.state.clone())
            .1
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let expected: BTreeSet<(String, String)> = doc
            .iter()
            .filter(|(_, p)| expect_admin || !p.starts_with("/api/admin/"))
            .cloned()
            .collect();
        assert_eq!(
            registered, expected,
            "router and /api/openapi.json differ (admin: {expect_admin})"
        );
    }
    // And over HTTP: every documented route answers (not 404/405).
    let queue: Arc<dyn OutboundQueue> = Arc::new(MemoryQueue::new(10, 10));
    let run = start(
        settings(|c| c.admin.token = Some(TOKEN.into())),
        Parts {
            handler: Some(XmlHandler::new(None, None)),
            outbound: Some(queue),
            config: Some(Config::default()),
            ..Parts::default()
        },
    )
    .await;
    let c = client();
    let served: serde_json::Value = c
        .get(format!("{}/api/openapi.json", run.base))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(served["openapi"], "3.1.0");
    for (method, path) in &doc {
        let path = path
            .replace("{cursor}", "1")
            .replace("{eui}", "00DB1234567890A0")
            .replace("{mpxn}", "1312345678907")
            .replace("{request_id}", "x");
        let url = format!("{}{}", run.base, path);
        let req = match method.as_str() {
            "get" => c.get(&url),
            "post" => c
                .post(&url)
                .header("content-type", "application/xml")
                .body(request(5)),
            other => panic!("unexpected method {other}"),
        };
        let resp = req.bearer_auth(TOKEN).send().await.expect("request");
        let status = resp.status().as_u16();
        let body = resp.text().await.expect("body");
        // A 404 from a handler carries a JSON error; the router's own 404 is empty.
        let routed = status != 405 && (status != 404 || body.contains("\"error\""));
        assert!(routed, "{method} {path}: {status} {body}");
    }
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn serves_over_tls_when_a_certificate_is_configured() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    let tls = tls::server_config(&cert_path, &key_path).expect("TLS config");
    let server = Server::bind(
        settings(|_| {}),
        Some(tls),
        Parts {
            handler: Some(XmlHandler::new(None, None)),
            ..Parts::default()
        },
    )
    .await
    .expect("bind");
    let port = server.local_addr().port();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let c = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.pem().as_bytes()).expect("cert")])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let r = c
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET over TLS");
    assert_eq!(r.status(), 200);
    let (status, code, _) = code_of(post(&c, &base, request(11)).await).await;
    assert_eq!((status, code.as_deref()), (200, Some("I99")));
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    let _ = tx.send(());
    task.await.expect("task").expect("clean stop");
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let run = start(
        settings(|c| {
            c.http.header_read_timeout_secs = 1;
            c.http.max_connections = 1;
        }),
        Parts {
            handler: Some(XmlHandler::new(None, None)),
            ..Parts::default()
        },
    )
    .await;
    let addr = run.base.trim_start_matches("http://").to_string();
    // A client that trickles its headers holds the only connection slot...
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so another client is not served meanwhile...
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let blocked = c
        .get(format!("{}/healthz", run.base))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(blocked.is_err(), "served beyond max_connections");
    // ...until the header-read timeout closes the slow connection.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the slow connection was not closed");
    let ok = c
        .get(format!("{}/healthz", run.base))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("served once the slot is free");
    assert_eq!(ok.status(), 200);
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn polling_with_tokens_shows_each_service_user_only_its_own_messages() {
    let queue: Arc<dyn OutboundQueue> = Arc::new(MemoryQueue::new(10, 10));
    let run = start(
        settings(|c| {
            c.delivery.poll_tokens.insert(
                "90B3D51F30010000".into(),
                "supplier1-poll-token-0001".into(),
            );
            c.delivery.poll_tokens.insert(
                "90B3D51F30030000".into(),
                "supplier2-poll-token-0002".into(),
            );
        }),
        Parts {
            outbound: Some(queue.clone()),
            ..Parts::default()
        },
    )
    .await;
    for (user, body) in [
        ("90B3D51F30010000", "<one/>"),
        ("90B3D51F30030000", "<two/>"),
    ] {
        queue
            .push(OutboundMessage {
                service_user: user.into(),
                body: body.as_bytes().to_vec(),
            })
            .await
            .expect("push");
    }
    let c = client();
    let url = format!("{}/api/v1/responses?since=0", run.base);
    assert_eq!(c.get(&url).send().await.expect("GET").status(), 401);
    let wrong = c
        .get(&url)
        .bearer_auth("supplier9-poll-token-0009")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let mine: serde_json::Value = c
        .get(&url)
        .bearer_auth("supplier2-poll-token-0002")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let items = mine["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["body"], "<two/>");
    let other = c
        .get(format!("{url}&service_user=90B3D51F30010000"))
        .bearer_auth("supplier2-poll-token-0002")
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), 403);
    run.stop().await.expect("clean stop");
}
