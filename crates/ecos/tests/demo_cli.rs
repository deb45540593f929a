//! The README's first command: `ecos demo` runs the whole system on its
//! embedded defaults and every scenario of the tour ends as expected.

use std::process::Command;

#[test]
fn demo_tour_passes_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecos"))
        .args(["demo", "--exit", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("!! expected"), "{stdout}");
    assert_eq!(stdout.matches("→ I99: accepted").count(), 4, "{stdout}");
    for code in ["E4", "E062305", "E5", "E1", "E062301"] {
        assert!(
            stdout.contains(&format!("→ {code}: refused")),
            "no {code} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("chain verified"), "{stdout}");
    assert!(stdout.contains("Demo finished."));
    assert!(dir.path().join("ecos.db").exists());
    assert!(dir.path().join("pki/index.json").exists());
}
