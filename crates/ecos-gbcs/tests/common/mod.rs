//! Shared test helpers: fixture discovery and key loading.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ecos_smki::{Eui64, P256PublicKey, SoftwareKeyAgreement, SoftwareSigner};

/// The shared fixtures directory, or `None` (with a printed message) when absent.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("rtds").is_dir() && dir.join("keystore").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: fixtures not found at {} (set ECOS_FIXTURES)",
            dir.display()
        );
        None
    }
}

/// Every RTDS vector, sorted, with its decoded bytes.
pub fn vectors(fx: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(fx.join("rtds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let bytes = hex::decode(text.trim()).unwrap();
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), bytes));
        }
    }
    out
}

/// One named vector.
pub fn vector(fx: &Path, dir: &str, name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fx.join("rtds").join(dir).join(name)).unwrap();
    hex::decode(text.trim()).unwrap()
}

/// The public key of a keystore certificate `<eui>-<kind>.pem`.
pub fn cert_key(fx: &Path, eui: Eui64, kind: &str) -> P256PublicKey {
    let path = fx
        .join("keystore")
        .join(format!("{}-{kind}.pem", eui.to_compact().to_lowercase()));
    cert_key_at(&path)
}

/// The public key of a certificate file.
pub fn cert_key_at(path: &Path) -> P256PublicKey {
    ecos_smki::Certificate::load(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .public_key()
        .clone()
}

/// The DER of a certificate file.
pub fn cert_der(path: &Path) -> Vec<u8> {
    ecos_smki::Certificate::load(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .der()
        .to_vec()
}

/// A keystore private key.
pub fn signer(fx: &Path, name: &str) -> SoftwareSigner {
    SoftwareSigner::from_file(fx.join("keystore").join(name)).unwrap()
}

/// A keystore key-agreement private key.
pub fn ka(fx: &Path, name: &str) -> SoftwareKeyAgreement {
    SoftwareKeyAgreement::from_file(fx.join("keystore").join(name)).unwrap()
}

pub const ACB: &str = "90b3d51f30000002-ka.key";
pub const TCOS_DS: &str = "90b3d51f30000004-ds.key";
