//! `ecos demo`: the whole system on one machine in one command: a generated
//! PKI, registration data and inventory in SQLite, a simulated fleet behind
//! the service, and a tour of changes of supplier that pass and fail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ecos_duis::Execution;
use ecos_party::demo::{self, RequestSpec};
use ecos_party::{PartyConfig, Reason};
use ecos_smki::Eui64;
use ecos_store::{Store, StoreConfig, StoreLocation};
use jiff::Timestamp;

use crate::config::Config;
use crate::serve::{Parts, Server, Settings};
use crate::wiring;

/// `ecos demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its PKI and SQLite database.
    #[arg(long, default_value = "./ecos-data/demo", env = "ECOS_DEMO_DIR")]
    data_dir: PathBuf,
    /// Address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Seed of the generated PKI.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Exit after the tour instead of leaving the service running.
    #[arg(long)]
    exit: bool,
}

struct Scenario {
    title: &'static str,
    expect: &'static str,
    body: Vec<u8>,
    request_id: String,
}

fn scenario(
    title: &'static str,
    expect: &'static str,
    spec: &RequestSpec,
    body: Vec<u8>,
) -> Scenario {
    let request_id =
        ecos_duis::RequestId::new(spec.originator, spec.device, spec.counter).to_string();
    Scenario {
        title,
        expect,
        body,
        request_id,
    }
}

/// Run `ecos demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    super::run_logged("warn", demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    println!("ecos demo: the Enduring Change of Supplier party, on one machine\n");

    // 1. PKI
    let pki = Arc::new(demo::pki(args.seed)?);
    let pki_dir = args.data_dir.join("pki");
    pki.write_to(&pki_dir)?;
    println!(
        "1. A test SMKI PKI (seed {}): root, issuing CA, {} organisations with XML Sign certificates \
         carrying their MPIDs, the transitional and enduring CoS keys, the ACB and DSP keys, and \
         {} devices. Written to {}.",
        args.seed,
        pki.organisations().len(),
        pki.devices().len(),
        pki_dir.display()
    );

    // 2. Store and data
    let party_config = PartyConfig::default();
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(&args.data_dir),
        StoreConfig {
            gbcs_counter_floor: party_config.counter_floor,
            ..StoreConfig::default()
        },
    )
    .await?;
    demo::load(&store, &pki).await?;
    let counts = store.counts().await?;
    println!(
        "2. Registration data and inventory in SQLite ({}): {} registration periods over {} meter \
         points, {} devices. Meter {} (MPAN {}) moves from supplier ACEE to BDEE on {}.",
        args.data_dir.join("ecos.db").display(),
        counts.registrations,
        counts.mpxns,
        counts.devices,
        demo::ESME_TCOS,
        demo::MPAN_1,
        demo::SWITCH_DATE
    );

    // 3. Party, fleet, service
    let fleet = wiring::demo_fleet(&pki, demo::SUPPLIER_A)?;
    let (link, responses) = wiring::SimLink::new(fleet.clone());
    let readiness = crate::serve::dashboard::ReadinessInputs::new(
        demo::registry(&pki),
        party_config.clone(),
        pki.organisations()
            .iter()
            .map(|o| o.xml_sign.cert.clone())
            .collect(),
    );
    let party =
        Arc::new(demo::party(&pki, store.clone(), party_config)?.with_transport(Arc::new(link)));
    let receiver = wiring::spawn_device_receiver(party.clone(), responses);
    let mut config = Config {
        data_dir: args.data_dir.clone(),
        ..Config::default()
    };
    config.http.listen = args.listen;
    let server = Server::bind(
        Settings::from(&config),
        None,
        Parts {
            handler: Some(party.clone()),
            config: Some(config.clone()),
            dashboard: Some(Arc::new(
                crate::serve::dashboard::Dashboard::new(store.clone()).with_readiness(readiness),
            )),
            store: Some(store.clone()),
            ..Parts::default()
        },
    )
    .await
    .with_context(|| format!("binding {}", args.listen))?;
    let addr = server.local_addr();
    let bridge = wiring::spawn_outbound_bridge(store.clone(), server.handle().outbound());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    println!(
        "3. The service listens on http://{addr} (POST DUIS to /api/v1/serviceS; GET /metrics, \
         /healthz, /api/v1/responses; the dashboard at http://{addr}/). Behind it, {} simulated meters hold supplier ACEE's \
         certificates and their CoS credential.\n",
        fleet.len()
    );

    // 4. The tour
    let base = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(1) * 100;
    let mut n = 0u64;
    let mut next = || {
        n += 1;
        base + n
    };
    let b = |device: Eui64, counter: u64, mpxn: &str| {
        RequestSpec::new(demo::SUPPLIER_B, device, counter, mpxn)
    };
    let mut tour = Vec::new();
    let s = b(demo::ESME_TCOS, next(), demo::MPAN_1);
    let ok_body = s.signed(&pki)?;
    tour.push(scenario(
        "BDEE takes over electricity meter A0 (still on the transitional CoS key)",
        "accepted",
        &s,
        ok_body.clone(),
    ));
    let s = b(demo::ESME_ECOS, next(), demo::MPAN_2);
    tour.push(scenario(
        "BDEE takes over meter A1, already migrated to the enduring CoS key",
        "accepted",
        &s,
        s.signed(&pki)?,
    ));
    let mut s = b(demo::GSME_TCOS, next(), demo::MPRN_1);
    s.execution =
        Execution::FutureDated(Timestamp::now() + jiff::SignedDuration::from_hours(24 * 7));
    tour.push(scenario(
        "BDG books a future-dated switch of gas meter A2 for next week",
        "accepted",
        &s,
        s.signed(&pki)?,
    ));
    let mut s = b(demo::GSME_TCOS, next(), demo::MPRN_1);
    s.execution = Execution::Cancellation;
    tour.push(scenario(
        "BDG cancels that future-dated switch",
        "accepted",
        &s,
        s.signed(&pki)?,
    ));
    let s = RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, next(), demo::MPAN_1);
    tour.push(scenario(
        "ACEE, the old supplier, tries to take meter A0 back",
        "refused",
        &s,
        s.signed(&pki)?,
    ));
    let s = b(demo::ESME_TCOS, next(), demo::MPAN_2);
    tour.push(scenario(
        "BDEE names the wrong MPAN for meter A0",
        "refused",
        &s,
        s.signed(&pki)?,
    ));
    let s = RequestSpec::new(demo::SUPPLIER_C, demo::GSME_TCOS, next(), demo::MPRN_1);
    tour.push(scenario(
        "CFEE, an electricity-only supplier, asks for a gas meter",
        "refused",
        &s,
        s.signed(&pki)?,
    ));
    let s = b(demo::ESME_SUSPENDED, next(), demo::MPAN_3);
    tour.push(scenario(
        "BDEE asks for a suspended meter",
        "refused",
        &s,
        s.signed(&pki)?,
    ));
    let s = b(demo::ESME_TCOS, next(), demo::MPAN_1);
    tour.push(scenario(
        "A request from BDEE signed with ACEE's XML Sign key",
        "refused",
        &s,
        s.sign_as(&pki, demo::SUPPLIER_A)?,
    ));
    let s = b(demo::ESME_TCOS, next(), demo::MPAN_1);
    let tampered = String::from_utf8_lossy(&s.signed(&pki)?).replace(
        "<sr:SupplierFloorSeqNumber>0<",
        "<sr:SupplierFloorSeqNumber>9<",
    );
    tour.push(scenario(
        "BDEE's request altered in transit after signing",
        "refused",
        &s,
        tampered.into_bytes(),
    ));
    tour.push(Scenario {
        title: "The first request replayed",
        expect: "refused",
        body: ok_body,
        request_id: String::new(),
    });

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/serviceS");
    let mut surprises = 0;
    println!("4. A tour of changes of supplier:\n");
    for (i, sc) in tour.iter().enumerate() {
        let resp = client
            .post(&url)
            .header("content-type", "application/xml")
            .body(sc.body.clone())
            .send()
            .await
            .context("posting to the service")?;
        let text = resp.text().await.unwrap_or_default();
        let code = between(&text, "<sr:ResponseCode>", "</sr:ResponseCode>").unwrap_or("?");
        let accepted = code == "I99" || code == "I0";
        let verdict = if accepted { "accepted" } else { "refused" };
        println!("  {:>2}. {}", i + 1, sc.title);
        if accepted {
            println!(
                "      → {code}: accepted; a CS02b command signed with the device's CoS key went to the meter"
            );
        } else {
            let why = reason_of(&store, &sc.request_id)
                .await
                .unwrap_or_else(|| "see the audit log".into());
            println!("      → {code}: refused: {why}");
        }
        if verdict != sc.expect {
            surprises += 1;
            println!("      !! expected {}", sc.expect);
        }
    }

    // 5. Device answers
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered = store.fetch_outbound_since(0, 1000, false).await?;
    println!(
        "\n5. The meters answered: {} signed DUIS responses (I0 with the device's GBCS response, \
         signed with the DSP key) are queued for the suppliers; read them with \
         GET http://{addr}/api/v1/responses?since=0",
        answered.len()
    );
    let audit = store.verify_audit_chain().await?;
    println!(
        "6. The audit log holds {} hash-chained entries; chain {}.",
        audit.entries,
        if audit.first_broken.is_none() {
            "verified"
        } else {
            "BROKEN"
        }
    );

    if args.exit {
        let _ = stop_tx.send(());
        let _ = serving.await;
        bridge.abort();
        receiver.abort();
        store.close().await;
        if surprises > 0 {
            anyhow::bail!("{surprises} scenario(s) did not end as expected");
        }
        println!("\nDemo finished.");
        return Ok(());
    }
    println!("\nThe service keeps running at http://{addr}; press Ctrl-C to stop.");
    crate::cmd::serve::shutdown_signal().await;
    let _ = stop_tx.send(());
    let _ = serving.await;
    Ok(())
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

async fn reason_of(store: &Store, request_id: &str) -> Option<String> {
    if request_id.is_empty() {
        // A replay keeps the first record; the refusal is in the audit log.
        let last = store
            .audit_entries(0, 10_000)
            .await
            .ok()?
            .into_iter()
            .last()?;
        let v: serde_json::Value = serde_json::from_str(&last.detail).ok()?;
        return v
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string);
    }
    let r = store.request(request_id).await.ok()??;
    let reason: Reason = serde_json::from_str(r.decision_reason.as_deref()?).ok()?;
    Some(reason.to_string())
}
