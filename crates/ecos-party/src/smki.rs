//! The SMKI certificates the party holds: signer lookup by issuer and
//! serial, path validation with a cache keyed by certificate digest.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ecos_smki::{Certificate, PathError, PathPolicy, TrustStore, validate_path};
use jiff::Timestamp;

/// Certificates, trust anchors, revocations and path policy.
#[derive(Debug)]
pub struct SmkiRegistry {
    by_issuer_serial: HashMap<(String, String), Arc<Certificate>>,
    trust: TrustStore,
    policy: PathPolicy,
    /// Paths already built, by the digests of the leaf and the extra
    /// intermediates: the certificates of the path (leaf first). Signatures
    /// never change, so only validity and revocation are re-checked on a hit.
    path_cache: Mutex<HashMap<[u8; 32], Arc<Vec<Certificate>>>>,
}

/// An X509IssuerName in a comparable form: no spaces around separators,
/// attribute types upper-cased.
pub fn normalise_issuer(name: &str) -> String {
    name.split(',')
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.split_once('=') {
                Some((t, v)) => format!("{}={}", t.trim().to_ascii_uppercase(), v.trim()),
                None => rdn.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl SmkiRegistry {
    /// An empty registry with these anchors and policy.
    pub fn new(trust: TrustStore, policy: PathPolicy) -> Self {
        SmkiRegistry {
            by_issuer_serial: HashMap::new(),
            trust,
            policy,
            path_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Hold a certificate so that signatures naming it can be resolved.
    pub fn add(&mut self, cert: Certificate) {
        let key = (
            normalise_issuer(&cert.issuer_rfc2253()),
            cert.serial_decimal(),
        );
        self.by_issuer_serial.insert(key, Arc::new(cert));
    }

    /// Hold every certificate (`*.pem`, `*.crt`, `*.der`) found under `dir`,
    /// recursively; files that are not certificates are skipped. Returns how
    /// many were added.
    pub fn add_dir(&mut self, dir: &Path) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                n += self.add_dir(&path)?;
                continue;
            }
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "pem" | "crt" | "der" | "cer") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            if let Ok(cert) = Certificate::from_pem_or_der(&bytes) {
                self.add(cert);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The certificate named by a signature's KeyInfo.
    pub fn lookup(&self, issuer: &str, serial_decimal: &str) -> Option<Arc<Certificate>> {
        self.by_issuer_serial
            .get(&(normalise_issuer(issuer), serial_decimal.to_string()))
            .cloned()
    }

    /// How many certificates are held.
    pub fn len(&self) -> usize {
        self.by_issuer_serial.len()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.by_issuer_serial.is_empty()
    }

    /// The trust store.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    /// Validate `leaf`'s path at `at` (validity checked only when
    /// `time_checks`), with `extra` as candidate intermediates.
    pub fn validate(
        &self,
        leaf: &Certificate,
        extra: &[Certificate],
        at: Timestamp,
        time_checks: bool,
    ) -> Result<(), PathError> {
        let mut key_input = Vec::with_capacity(32 * (1 + extra.len()));
        key_input.extend_from_slice(&leaf.sha256());
        for c in extra {
            key_input.extend_from_slice(&c.sha256());
        }
        let key: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key_input)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let cached = self
            .path_cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned());
        if let Some(path) = cached {
            // Signatures, constraints and policy were checked when it was
            // built; validity and revocation can change with time.
            for cert in path.iter() {
                if self.trust.revocations().is_revoked(cert) {
                    return Err(PathError::Revoked {
                        subject: cert.subject_rfc2253(),
                        issuer: cert.issuer_rfc2253(),
                        serial: hex::encode_upper(cert.serial()),
                    });
                }
                if time_checks && (at < cert.not_before() || at > cert.not_after()) {
                    // Fall through to a full validation for the precise error.
                    return validate_path(leaf, extra, &self.trust, at, &self.policy, time_checks)
                        .map(|_| ());
                }
            }
            return Ok(());
        }
        let validated = validate_path(leaf, extra, &self.trust, at, &self.policy, time_checks)?;
        if let Ok(mut c) = self.path_cache.lock() {
            if c.len() > 100_000 {
                c.clear();
            }
            c.insert(key, Arc::new(validated.certificates().to_vec()));
        }
        Ok(())
    }
}
