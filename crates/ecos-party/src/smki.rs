//! The SMKI certificates the party holds: signer lookup by issuer and
//! serial, path validation with a cache keyed by certificate digest.
//!
//! The cache holds paths whose signatures, constraints and policy were
//! checked; validity and revocation are checked again on every hit against
//! the revocation list in force then, so a cached success never outlives a
//! revocation or an expiry ([`SmkiRegistry::set_revocations`] also drops
//! every cached path).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use ecos_smki::{
    Bounded, CacheStats, Certificate, PathError, PathPolicy, Revocations, TrustStore, validate_path,
};
use jiff::Timestamp;

/// How many validated paths a registry keeps.
pub const PATH_CACHE_CAPACITY: usize = 16_384;

/// Certificates, trust anchors, revocations and path policy.
#[derive(Debug)]
pub struct SmkiRegistry {
    /// By normalised issuer name, then by decimal serial.
    by_issuer_serial: HashMap<String, HashMap<String, Arc<Certificate>>>,
    /// Anchors and the revocation list in force (replaced whole by
    /// [`SmkiRegistry::set_revocations`]).
    trust: RwLock<Arc<TrustStore>>,
    policy: PathPolicy,
    /// Paths already built, by the digests of the leaf and the extra
    /// intermediates: the certificates of the path (leaf first). Signatures
    /// never change, so only validity and revocation are re-checked on a hit.
    path_cache: Bounded<[u8; 32], Arc<Vec<Certificate>>>,
}

/// An X509IssuerName in a comparable form: no spaces around separators,
/// attribute types upper-cased.
pub fn normalise_issuer(name: &str) -> String {
    normalised(name).into_owned()
}

/// [`normalise_issuer`], borrowing `name` when it is already in that form
/// (as the names the party's own certificates produce are): a signer
/// look-up then allocates nothing.
fn normalised(name: &str) -> std::borrow::Cow<'_, str> {
    let is_normal = |rdn: &str| {
        rdn.trim() == rdn
            && match rdn.split_once('=') {
                Some((t, v)) => {
                    t.trim_end() == t
                        && v.trim_start() == v
                        && !t.bytes().any(|b| b.is_ascii_lowercase())
                }
                None => true,
            }
    };
    if name.split(',').all(is_normal) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for (i, rdn) in name.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        let rdn = rdn.trim();
        match rdn.split_once('=') {
            Some((t, v)) => {
                out.extend(t.trim().chars().map(|c| c.to_ascii_uppercase()));
                out.push('=');
                out.push_str(v.trim());
            }
            None => out.push_str(rdn),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl SmkiRegistry {
    /// An empty registry with these anchors and policy.
    pub fn new(trust: TrustStore, policy: PathPolicy) -> Self {
        SmkiRegistry {
            by_issuer_serial: HashMap::new(),
            trust: RwLock::new(Arc::new(trust)),
            policy,
            path_cache: Bounded::new(PATH_CACHE_CAPACITY),
        }
    }

    /// Hold a certificate so that signatures naming it can be resolved.
    pub fn add(&mut self, cert: Certificate) {
        self.by_issuer_serial
            .entry(normalise_issuer(&cert.issuer_rfc2253()))
            .or_default()
            .insert(cert.serial_decimal(), Arc::new(cert));
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
            .get(normalised(issuer).as_ref())?
            .get(serial_decimal)
            .cloned()
    }

    /// How many certificates are held.
    pub fn len(&self) -> usize {
        self.by_issuer_serial.values().map(HashMap::len).sum()
    }

    /// Whether no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.by_issuer_serial.values().all(HashMap::is_empty)
    }

    /// The trust store in force.
    pub fn trust(&self) -> Arc<TrustStore> {
        self.trust.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Put a new revocation list in force (a CRL update). Every later
    /// validation, cached or not, checks against it; cached paths are dropped.
    pub fn set_revocations(&self, revocations: Revocations) {
        let mut trust = self.trust.write().unwrap_or_else(|e| e.into_inner());
        let mut next = TrustStore::clone(&trust);
        next.set_revocations(revocations);
        *trust = Arc::new(next);
        self.path_cache.clear();
    }

    /// Hits and misses of the path cache.
    pub fn path_cache_stats(&self) -> CacheStats {
        self.path_cache.stats()
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
        let trust = self.trust();
        if let Some(path) = self.path_cache.get(&key) {
            // Signatures, constraints and policy were checked when it was
            // built; validity and revocation can change with time.
            for cert in path.iter() {
                if trust.revocations().is_revoked(cert) {
                    return Err(PathError::Revoked {
                        subject: cert.subject_rfc2253(),
                        issuer: cert.issuer_rfc2253(),
                        serial: hex::encode_upper(cert.serial()),
                    });
                }
                if time_checks && (at < cert.not_before() || at > cert.not_after()) {
                    // Fall through to a full validation for the precise error.
                    return validate_path(leaf, extra, &trust, at, &self.policy, time_checks)
                        .map(|_| ());
                }
            }
            return Ok(());
        }
        let validated = validate_path(leaf, extra, &trust, at, &self.policy, time_checks)?;
        self.path_cache
            .insert(key, Arc::new(validated.certificates().to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    fn at() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn issuer_names_normalise_as_written_and_borrow_when_already_normal() {
        // The form as first specified: each RDN trimmed, its type trimmed
        // and upper-cased, its value trimmed, joined by commas.
        let spec = |name: &str| {
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
        };
        for name in [
            "",
            ",",
            "CN=Issuing CA,O=DCC",
            "cn=Issuing CA, o = DCC ",
            " CN = a=b , ,OU=07",
            "CN=\u{e9}t\u{e9},o=x",
            "novalue, CN=x",
            "CN= x",
            "CN =x",
            "Cn=x",
            "CN=x\u{a0}",
        ] {
            assert_eq!(normalise_issuer(name), spec(name), "{name:?}");
            let borrowed = matches!(normalised(name), std::borrow::Cow::Borrowed(_));
            assert_eq!(borrowed, spec(name) == name, "{name:?}");
        }
    }

    #[test]
    fn a_revocation_after_a_cached_success_still_rejects() {
        let pki = demo::pki(1).unwrap();
        let reg = demo::registry(&pki);
        let org = pki.organisation(demo::SUPPLIER_B).unwrap();
        let path = vec![pki.issuing_ca().cert.clone()];
        for _ in 0..2 {
            reg.validate(&org.ka.cert, &path, at(), true).unwrap();
            reg.validate(&org.xml_sign.cert, &[], at(), true).unwrap();
        }
        assert_eq!(reg.path_cache_stats().hits, 2, "the second round is cached");

        // The CRL gains the KA certificate: the cached path rejects it at once.
        let mut crl = Revocations::new();
        crl.add_certificate(&org.ka.cert);
        reg.set_revocations(crl);
        for _ in 0..2 {
            assert!(matches!(
                reg.validate(&org.ka.cert, &path, at(), true),
                Err(PathError::Revoked { .. })
            ));
        }
        // The signer is not revoked and is still accepted.
        reg.validate(&org.xml_sign.cert, &[], at(), true).unwrap();

        // The issuing CA revoked: every path through it fails, cached or not.
        let mut crl = Revocations::new();
        crl.add_certificate(&pki.issuing_ca().cert);
        reg.set_revocations(crl.clone());
        reg.validate(&org.xml_sign.cert, &[], at(), true)
            .unwrap_err();
        // A revocation made on a path cached after the update (the cache's
        // entries are re-checked on every hit, not only dropped on update).
        let reg = demo::registry(&pki);
        reg.validate(&org.ds.cert, &path, at(), true).unwrap();
        reg.validate(&org.ds.cert, &path, at(), true).unwrap();
        assert_eq!(reg.path_cache_stats().hits, 1);
        reg.set_revocations(crl);
        assert!(matches!(
            reg.validate(&org.ds.cert, &path, at(), true),
            Err(PathError::Revoked { .. })
        ));
    }

    #[test]
    fn expiry_after_a_cached_success_still_rejects() {
        let pki = demo::pki(1).unwrap();
        let reg = demo::registry(&pki);
        let cert = &pki.organisation(demo::SUPPLIER_B).unwrap().xml_sign.cert;
        reg.validate(cert, &[], at(), true).unwrap();
        reg.validate(cert, &[], at(), true).unwrap();
        assert_eq!(reg.path_cache_stats().hits, 1);
        let after = cert
            .not_after()
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap();
        let uncached = demo::registry(&pki).validate(cert, &[], after, true);
        let cached = reg.validate(cert, &[], after, true);
        assert!(uncached.is_err());
        assert_eq!(
            cached.unwrap_err().to_string(),
            uncached.unwrap_err().to_string(),
            "the cached path gives the verdict and the error a fresh validation gives"
        );
    }
}
