//! Helpers shared by the process-level tests (`faults.rs`, `migrate_kill.rs`): the
//! built binary with a clean environment, a deterministic generator of fault points,
//! and `ecos audit verify`.
#![allow(dead_code)] // each test crate uses its own share

use std::path::Path;
use std::process::Command;

/// The built `ecos` binary, with no `ECOS_*` variable of the caller's environment.
pub fn ecos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ecos"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ECOS_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_BACKTRACE", "0");
    c
}

/// A small deterministic generator for the fault points.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The seed of the fault points: `ECOS_FAULTS_SEED`, or from the clock.
pub fn seed() -> u64 {
    std::env::var("ECOS_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(jiff::Timestamp::now().as_nanosecond() & 0x7fff_ffff_ffff).unwrap_or(1)
                | 1
        })
}

/// `ecos audit verify` on a data directory (or a PostgreSQL URL) must pass.
pub fn audit_verify(data: &Path, database_url: Option<&str>) {
    let mut c = ecos();
    c.args(["audit", "verify", "--data-dir"]).arg(data);
    if let Some(url) = database_url {
        c.args(["--database-url", url]);
    }
    let out = c.output().expect("ecos audit verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("audit log verified"),
        "ecos audit verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many kills: `ECOS_FAULTS_KILLS`, or `default`.
pub fn kills_wanted(default: u32) -> u32 {
    std::env::var("ECOS_FAULTS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
