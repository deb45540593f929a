//! Shared test helpers: fixture location, certificates, xmllint.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ecos_smki::{Certificate, P256PublicKey};

/// `$ECOS_FIXTURES` or `../../../shared/fixtures`; `None` (with a message) when absent.
pub fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ECOS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    if dir.join("duis-signed").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: fixtures not found at {} (set ECOS_FIXTURES)",
            dir.display()
        );
        None
    }
}

/// What a resolver needs of a certificate.
#[derive(Debug, Clone)]
pub struct SignerId {
    /// Issuer, RFC 2253.
    pub issuer: String,
    /// Serial, decimal.
    pub serial: String,
    /// Public key.
    pub key: P256PublicKey,
}

impl From<&Certificate> for SignerId {
    fn from(c: &Certificate) -> Self {
        SignerId {
            issuer: c.issuer_rfc2253(),
            serial: c.serial_decimal(),
            key: c.public_key().clone(),
        }
    }
}

/// Big-endian unsigned bytes to decimal.
pub fn decimal(be: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base 10
    for &byte in be {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// A certificate's signer identity via x509-cert directly (for the legacy
/// certificates the SMKI profile parser refuses, e.g. OU "137").
pub fn signer_id_x509(pem: &[u8]) -> SignerId {
    use der::DecodePem;
    let c = x509_cert::Certificate::from_pem(pem).expect("PEM certificate");
    let tbs = c.tbs_certificate();
    SignerId {
        issuer: tbs.issuer().to_string(),
        serial: decimal(tbs.serial_number().as_bytes()),
        key: P256PublicKey::from_sec1(tbs.subject_public_key_info().subject_public_key.raw_bytes())
            .expect("P-256 key"),
    }
}

/// A certificate from `zaz1/`: through `ecos_smki::Certificate`, or through
/// x509-cert when the SMKI profile parser refuses it.
pub fn zaz1_cert(fx: &Path, name: &str) -> SignerId {
    let path = fx.join("zaz1").join(name);
    match Certificate::load(&path) {
        Ok(c) => {
            let id = SignerId::from(&c);
            let direct = signer_id_x509(&std::fs::read(&path).unwrap());
            assert_eq!(
                (&id.issuer, &id.serial, &id.key),
                (&direct.issuer, &direct.serial, &direct.key)
            );
            id
        }
        Err(e) => {
            eprintln!("note: ecos_smki refuses zaz1/{name} ({e}); reading it with x509-cert");
            signer_id_x509(&std::fs::read(&path).unwrap())
        }
    }
}

/// A resolver over a set of signers: (issuer RFC 2253, decimal serial) → key.
pub fn resolver(certs: &[SignerId]) -> impl Fn(&str, &str) -> Option<P256PublicKey> + '_ {
    move |issuer: &str, serial: &str| {
        certs
            .iter()
            .find(|c| c.serial == serial && c.issuer == issuer)
            .map(|c| c.key.clone())
    }
}

/// Is xmllint on the PATH? Prints a skip message when not.
pub fn have_xmllint() -> bool {
    let ok = Command::new("xmllint")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: xmllint not found (Debian package libxml2-utils)");
    }
    ok
}

/// Run `xmllint <flag>` over each document, in one shell, returning each output.
pub fn xmllint_batch(flag: &str, docs: &[Vec<u8>]) -> Vec<Result<Vec<u8>, String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, d) in docs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.xml")), d).expect("write");
    }
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do xmllint --nonet {flag} \"$i.xml\" 2>/dev/null; printf '\\0%d\\0' $?; i=$((i+1)); done",
        n = docs.len()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .expect("run xmllint");
    let mut parts = out.stdout.split(|&b| b == 0);
    let mut res = Vec::new();
    for _ in 0..docs.len() {
        let body = parts.next().unwrap_or_default().to_vec();
        let code = parts.next().unwrap_or_default();
        if code == b"0" {
            res.push(Ok(body));
        } else {
            res.push(Err(format!(
                "xmllint exit {}",
                String::from_utf8_lossy(code)
            )));
        }
    }
    res
}

/// Write bytes to a temp file and return its path holder.
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(bytes).expect("write");
    f
}
