//! SoftHSM2 set-up shared by the PKCS#11 tests (this crate's and the
//! `ecos serve` process test, which includes this file by path): finding
//! the module, and a fresh token with a demo PKI's keys imported under
//! labels of the test's choosing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The SoftHSM2 module: `$ECOS_PKCS11_MODULE`, or where Debian installs it.
pub fn module() -> Option<PathBuf> {
    std::env::var_os("ECOS_PKCS11_MODULE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.exists())
}

/// Why the SoftHSM2 tests cannot run here, if they cannot.
pub fn unavailable() -> Option<&'static str> {
    if module().is_none() {
        return Some(
            "SoftHSM2 is not installed (apt-get install softhsm2, or set ECOS_PKCS11_MODULE)",
        );
    }
    if Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("softhsm2-util is not on PATH");
    }
    None
}

/// Run `softhsm2-util` with the configuration `conf`; panics with its output on failure.
pub fn softhsm_util(conf: &Path, args: &[&str]) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(args)
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The key file of a credential in a PKI directory written by `TestPki::write_to`.
pub fn key_file(pki_dir: &Path, credential: &str) -> PathBuf {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pki_dir.join("index.json")).expect("index"))
            .expect("JSON");
    let entry = index["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["credential"] == credential)
        .expect("credential in the index")
        .clone();
    pki_dir.join(entry["key"].as_str().expect("key path"))
}

/// A token directory and configuration under `dir` with one token
/// (`label`, user `pin`), and each `(credential, key label)` of the PKI in
/// `pki_dir` imported into it (ids 01, 02, ...). Returns the configuration
/// file, for `SOFTHSM2_CONF`.
pub fn init_token(
    dir: &Path,
    label: &str,
    pin: &str,
    pki_dir: &Path,
    keys: &[(&str, &str)],
) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("mkdir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("write conf");
    softhsm_util(
        &conf,
        &[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            "12345678",
            "--pin",
            pin,
        ],
    );
    for (i, (credential, key_label)) in keys.iter().enumerate() {
        let key = key_file(pki_dir, credential);
        softhsm_util(
            &conf,
            &[
                "--import",
                key.to_str().expect("path"),
                "--token",
                label,
                "--label",
                key_label,
                "--id",
                &format!("{:02x}", i + 1),
                "--pin",
                pin,
            ],
        );
    }
    conf
}
