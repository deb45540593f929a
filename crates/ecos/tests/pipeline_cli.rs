//! The pipeline through the binary: `ecos check` explains a verdict without
//! side effects, `ecos serve --simulate-devices` runs a 6.23 end to end over
//! real HTTP on loopback, and `ecos audit verify` checks the chain after.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ecos_party::demo::{self, RequestSpec};

fn ecos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecos"));
    c.env("RUST_BACKTRACE", "0");
    c
}

fn counter() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap() * 100 + 50_000
}

#[test]
fn check_serve_and_audit_over_a_demo_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ecos()
        .args(["demo", "--exit", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pki = demo::pki(1).unwrap();

    // ecos check: accepted and refused, nothing stored
    let n = counter();
    let ok = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, n, demo::MPAN_1)
        .signed(&pki)
        .unwrap();
    let ok_path = data.join("ok.xml");
    std::fs::write(&ok_path, &ok).unwrap();
    let out = ecos()
        .arg("check")
        .arg(&ok_path)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("ACCEPTED"), "{text}");
    assert!(text.contains("transitional CoS key"), "{text}");

    let bad = RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, n, demo::MPAN_1)
        .signed(&pki)
        .unwrap();
    let bad_path = data.join("bad.xml");
    std::fs::write(&bad_path, &bad).unwrap();
    let out = ecos()
        .arg("check")
        .arg(&bad_path)
        .args(["--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "refused");
    assert_eq!(v["reason"], "mpid_not_registered_supplier");
    assert_eq!(v["response_code"], "E4");
    assert_eq!(v["check"], "mpid");

    // ecos serve with simulated meters
    let mut child = ecos()
        .args([
            "serve",
            "--simulate-devices",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.strip_prefix("ecos: listening on http://") {
            break rest.trim().to_string();
        }
    };
    let client = reqwest::blocking::Client::new();
    let answer = client
        .post(format!("http://{addr}/api/v1/serviceS"))
        .header("content-type", "application/xml")
        .body(ok.clone())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        answer.contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
        "{answer}"
    );
    // the replay is refused by the running service
    let again = client
        .post(format!("http://{addr}/api/v1/serviceS"))
        .header("content-type", "application/xml")
        .body(ok)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        again.contains("<sr:ResponseCode>E062301</sr:ResponseCode>"),
        "{again}"
    );
    // the simulated meter's response comes back, DSP-signed, for supplier B
    let deadline = Instant::now() + Duration::from_secs(20);
    let polled = loop {
        let body = client
            .get(format!("http://{addr}/api/v1/responses?since=0"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if body.contains("90B3D51F30030000") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        polled.contains("90B3D51F30030000"),
        "no response for supplier B: {polled}"
    );
    let ready = client.get(format!("http://{addr}/readyz")).send().unwrap();
    assert!(ready.status().is_success());
    // decisions by reason on /metrics
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ecos_pipeline_decisions_total")
                && l.contains("reason=\"request_id_reused\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ecos_pipeline_decisions_total")
                && l.contains("decision=\"accepted\"")
                && l.contains("reason=\"signed_tcos\"")),
        "{metrics}"
    );
    terminate(&mut child);

    let out = ecos()
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("audit log verified"), "{text}");
}

fn terminate(child: &mut std::process::Child) {
    // SIGTERM through the kill command: graceful shutdown
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `ecos regdata import` against the store of a running `ecos serve`: the
/// service re-validates its pending future-dated 6.23s, cancels the one
/// whose requester is no longer the registered supplier at its execution
/// date on the (simulated) device, and the requester polls an ECoSAlert.
#[test]
fn regdata_import_cancels_an_invalidated_future_dated_request_in_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = ecos()
        .args(["demo", "--exit", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pki = demo::pki(1).unwrap();
    let mut child = ecos()
        .args([
            "serve",
            "--simulate-devices",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.strip_prefix("ecos: listening on http://") {
            break rest.trim().to_string();
        }
    };
    let client = reqwest::blocking::Client::new();
    let now = jiff::Timestamp::now();
    let day = |d: i64| {
        jiff::tz::TimeZone::UTC
            .to_datetime(now + jiff::SignedDuration::from_hours(24 * d))
            .date()
    };
    let mut spec = RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, counter(), demo::MPAN_1);
    spec.execution =
        ecos_duis::Execution::FutureDated(format!("{}T00:00:00Z", day(30)).parse().unwrap());
    let answer = client
        .post(format!("http://{addr}/api/v1/serviceS"))
        .header("content-type", "application/xml")
        .body(spec.signed(&pki).unwrap())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        answer.contains("<sr:ResponseCode>I99</sr:ResponseCode>"),
        "{answer}"
    );

    // B's registration of MPAN_1 ends in ten days; C takes over.
    let update = data.join("regdata-update.csv");
    std::fs::write(
        &update,
        format!(
            "mpxn,supplier_mpid,effective_from,effective_to\n{m},BDEE,{s},{end}\n{m},CFEE,{next},\n",
            m = demo::MPAN_1,
            s = demo::SWITCH_DATE,
            end = day(10),
            next = day(11),
        ),
    )
    .unwrap();
    let out = ecos()
        .args(["regdata", "import", "--mode", "update", "--data-dir"])
        .arg(data)
        .arg(&update)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("re-validates"), "{text}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let polled = loop {
        let body = client
            .get(format!("http://{addr}/api/v1/responses?since=0"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if body.contains("ECoSAlert") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(polled.contains("ECoSAlert"), "no ECoSAlert: {polled}");
    assert!(polled.contains("FDCANCELLED"), "{polled}");
    terminate(&mut child);

    let out = ecos()
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
}
