//! The dashboard in a real browser: `ecos demo` drives its tour of changes of
//! supplier (4 accepted, 7 refused, each for another reason), `ecos migrate
//! run` migrates the demo meters in the same store, then Chromium (through
//! Playwright, `tests/dashboard/check.cjs`) loads `/`, and the numbers the
//! charts show must be the JSON endpoints' and the demo's. A screenshot goes
//! to `$ECOS_SCREENSHOT_DIR/dashboard.png` (default: the target directory's
//! tmp dir).
//!
//! Needs node, Chromium (`/usr/bin/chromium` or `$ECOS_CHROMIUM`) and the npm
//! package `playwright-core` (`.ci/node/node_modules`, or
//! `$ECOS_PLAYWRIGHT_CORE`); `.ci/run` installs them. Skips with a message
//! when one is absent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    playwright: PathBuf,
}

fn tools() -> Result<Tools, String> {
    let node = std::env::var_os("ECOS_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let ok = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return Err(format!("node ({}) does not run", node.display()));
    }
    let chromium = std::env::var_os("ECOS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium, or set ECOS_CHROMIUM)",
            chromium.display()
        ));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let playwright = std::env::var_os("ECOS_PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".ci/node/node_modules/playwright-core"));
    if !playwright.join("package.json").exists() {
        return Err(format!(
            "no playwright-core at {} (npm install playwright-core in .ci/node, or set ECOS_PLAYWRIGHT_CORE)",
            playwright.display()
        ));
    }
    Ok(Tools {
        node,
        chromium,
        playwright: playwright.canonicalize().unwrap_or(playwright),
    })
}

/// The demo, killed when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `ecos demo` on a free port; return it and its base URL once the tour is done.
fn start_demo(dir: &Path) -> (Demo, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_ecos"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ecos demo");
    let mut demo = Demo(child);
    let stdout = demo.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut base = None;
    let mut transcript = String::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(180))
            .unwrap_or_else(|_| panic!("the demo did not finish its tour:\n{transcript}"));
        transcript.push_str(&line);
        transcript.push('\n');
        assert!(!line.contains("!! expected"), "{transcript}");
        if let Some(rest) = line.split("listens on http://").nth(1) {
            let addr = rest.split_whitespace().next().expect("address");
            base = Some(format!("http://{addr}"));
        }
        if line.contains("The service keeps running") {
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("no address in:\n{transcript}"));
    (demo, base)
}

fn get(base: &str, path: &str) -> serde_json::Value {
    let r = reqwest::blocking::get(format!("{base}{path}")).expect("GET");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().expect("JSON")
}

#[test]
fn dashboard_renders_the_demos_numbers_in_chromium() {
    let tools = match tools() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipping the dashboard browser test: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_demo, base) = start_demo(dir.path());

    // Migrate the demo meters in the same store (a second process, as an operator would).
    let out = Command::new(env!("CARGO_BIN_EXE_ecos"))
        .args([
            "migrate",
            "run",
            "--demo",
            "--max-steps",
            "40",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("ecos migrate run");
    assert!(
        out.status.success(),
        "migrate run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the endpoints say.
    let overview = get(&base, "/api/dashboard/v1/overview?since=1h");
    let failures = get(&base, "/api/dashboard/v1/failures?since=1h");
    let migration = get(&base, "/api/dashboard/v1/migration");
    let readiness = get(&base, "/api/dashboard/v1/readiness");
    let audit = get(&base, "/api/dashboard/v1/audit");
    // What the demo drove: 4 accepted, 7 refused, each for its own reason.
    assert_eq!(overview["accepted"], 4, "{overview}");
    assert_eq!(overview["refused"], 7, "{overview}");
    let reasons = failures["by_reason"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 7, "{failures}");
    assert!(reasons.iter().all(|g| g["count"] == 1), "{failures}");
    assert_eq!(audit["intact"], true, "{audit}");
    let by_state = migration["counts"]["by_state"]
        .as_object()
        .expect("by_state")
        .clone();
    assert!(
        by_state.get("migrated").and_then(|v| v.as_u64()) >= Some(1),
        "{migration}"
    );

    // What the browser shows.
    let shot_dir = std::env::var_os("ECOS_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&shot_dir).expect("screenshot dir");
    let shot = shot_dir.join("dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/check.cjs");
    let out = Command::new(&tools.node)
        .arg(&script)
        .arg(format!("{base}/?range=1h"))
        .arg(&tools.playwright)
        .arg(&tools.chromium)
        .arg(&shot)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("browser output is not JSON ({e}):\n{stdout}"));
    eprintln!("screenshot: {}", shot.display());
    assert!(shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false));

    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["error"], serde_json::Value::Null, "{seen}");
    // KPI tiles = the overview endpoint = the demo.
    assert_eq!(seen["kpis"]["accepted"]["value"], "4", "{seen}");
    assert_eq!(seen["kpis"]["refused"]["value"], "7", "{seen}");
    assert_eq!(seen["kpis"]["accepted"]["text"], "4");
    // Traffic chart: the bars add up to the same, refusals by reason.
    assert_eq!(seen["traffic_series"]["accepted"], 4, "{seen}");
    let refused_bars: u64 = seen["traffic_series"]
        .as_object()
        .expect("series")
        .iter()
        .filter(|(k, _)| *k != "accepted")
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(refused_bars, 7, "{seen}");
    // Reasons chart = the failures endpoint.
    for g in reasons {
        let r = g["reason"].as_str().expect("reason");
        assert_eq!(seen["reasons"][r], g["count"], "{r}: {seen}");
    }
    // Service users chart = the failures endpoint.
    for u in failures["by_service_user"].as_array().expect("users") {
        let id = u["service_user"].as_str().expect("user");
        assert_eq!(seen["users"][id]["accepted"], u["accepted"], "{id}: {seen}");
        assert_eq!(seen["users"][id]["refused"], u["refused"], "{id}: {seen}");
    }
    // Migration donut = the migration endpoint.
    for (state, n) in &by_state {
        assert_eq!(&seen["migration_states"][state], n, "{state}: {seen}");
    }
    assert!(
        seen["migration_progress_bars"].as_u64() >= Some(1),
        "{seen}"
    );
    // Readiness bars = the readiness endpoint.
    for u in readiness["users"].as_array().expect("users") {
        let org = u["org"].as_str().expect("org");
        assert_eq!(
            seen["readiness"][org]["pass"],
            u.get("pass_today").cloned().unwrap_or(0.into()),
            "{org}: {seen}"
        );
    }
    // Audit chain card = the audit endpoint.
    assert_eq!(seen["audit"]["state"], "intact");
    assert_eq!(seen["audit"]["entries"], audit["entries"], "{seen}");
    assert!(seen["examples"].as_u64() >= Some(7), "{seen}");
    assert!(
        seen["stages"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "total")),
        "{seen}"
    );
}
