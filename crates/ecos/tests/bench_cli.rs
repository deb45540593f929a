//! `ecos bench serve` as a process: a tiny load run completes, every
//! acknowledgement is found in the store, and the figures (with their
//! same-run baselines) come out as text and as JSON. Correctness only: the
//! figures of a debug build on a loaded machine mean nothing.

use std::process::Command;

#[test]
fn a_small_served_load_run_reports_rates_latencies_and_ratios() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("bench.json");
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecos"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ECOS_") {
            c.env_remove(k);
        }
    }
    let out = c
        .args([
            "bench",
            "serve",
            "--requests",
            "16",
            "--concurrency",
            "2",
            "--meters-per-supplier",
            "2",
            "--max-secs",
            "120",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run ecos bench serve");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "6.23 over HTTP, durable I99",
        "baseline: same handler in process",
        "baseline: GET /healthz",
        "ratios: HTTP 6.23 rate =",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("JSON written")).expect("JSON");
    assert_eq!(v["backend"], "SQLite");
    let phases = v["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 3);
    for p in phases {
        assert_eq!(p["ok"], 16, "{p}");
        assert_eq!(p["failed"], 0, "{p}");
        let (p50, p99) = (
            p["p50_ms"].as_f64().expect("p50"),
            p["p99_ms"].as_f64().expect("p99"),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{p}");
    }
    // Warm-up (4 per supplier) + 16 over HTTP + 16 in process.
    assert_eq!(v["stored_acknowledged"], 40);
    assert!(v["http_vs_in_process"].as_f64().expect("ratio") > 0.0);
}
