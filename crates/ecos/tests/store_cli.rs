//! `ecos data generate`, `ecos regdata import/lookup` and `ecos inventory import` as a user
//! runs them (no terminal, so no progress bar): the summary line, the line number of a bad
//! row with nothing applied, and a full refresh end-dating what it does not list.

use std::path::Path;
use std::process::{Command, Output};

fn ecos(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecos"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("ECOS_DATABASE_URL")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run ecos")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn imports_report_summaries_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("set");
    let out = Command::new(env!("CARGO_BIN_EXE_ecos"))
        .args(["data", "generate", "--devices", "40", "--seed", "3"])
        .arg(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let db = dir.path().join("db");

    let reg = files.join("regdata.csv");
    let out = ecos(
        &[
            "regdata",
            "import",
            reg.to_str().unwrap(),
            "--source",
            "RDP1",
        ],
        &db,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("imported regdata.csv (registration, refresh): "),
        "{stdout}"
    );
    assert!(
        stdout.contains(" removed, 0 check-digit warnings in "),
        "{stdout}"
    );
    // Not a terminal: no progress bar drawn.
    assert!(!stderr.contains('['), "{stderr}");

    for f in ["inventory.csv", "service-users.csv"] {
        let p = files.join(f);
        let out = ecos(&["inventory", "import", p.to_str().unwrap()], &db);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.starts_with(&format!("imported {f} (")), "{stdout}");
    }

    // A bad row: its line number, and nothing applied.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         1312345678907,ACEE,2023-01-01,\n\n1312345678907,BCEE,2024-02-30,\n",
    )
    .unwrap();
    let out = ecos(&["regdata", "import", bad.to_str().unwrap()], &db);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains("bad.csv line 4: column effective_from: \"2024-02-30\""),
        "{stderr}"
    );
    assert!(stderr.contains("nothing applied"), "{stderr}");
    let out = ecos(&["regdata", "lookup", "1312345678907"], &db);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("no registered supplier"), "{stdout}");

    // A full refresh by the same provider listing one MPAN end-dates the others.
    let full = dir.path().join("full.csv");
    std::fs::write(
        &full,
        "mpxn,supplier_mpid,effective_from\n1312345678907,ACEE,2023-01-01\n",
    )
    .unwrap();
    let out = ecos(
        &[
            "regdata",
            "import",
            full.to_str().unwrap(),
            "--mode",
            "full-refresh",
            "--source",
            "RDP1",
            "--as-of",
            "2030-01-01",
        ],
        &db,
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(
            "imported full.csv (registration, full-refresh): 1 rows, 1 keys, 1 written, 0 removed, "
        ),
        "{stdout}"
    );
    let ended: u64 = stdout
        .split(", ")
        .find_map(|p| p.strip_suffix(" end-dated"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no end-dated count in {stdout}"));
    assert!(
        ended >= 20,
        "every generated MPxN had an open period: {stdout}"
    );
    let out = ecos(
        &[
            "regdata",
            "lookup",
            "1312345678907",
            "--at",
            "2031-01-01T12:00:00Z",
        ],
        &db,
    );
    let (stdout, _) = text(&out);
    assert!(stdout.contains(": ACEE since 2023-01-01"), "{stdout}");

    // Without a provider, a full refresh is refused.
    let out = ecos(
        &[
            "regdata",
            "import",
            full.to_str().unwrap(),
            "--mode",
            "full-refresh",
            "--file-id",
            "full2",
        ],
        &db,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("needs its data provider"), "{stderr}");
}
