//! A bounded cache of parsed certificates.
//!
//! Parsing and profile-checking a certificate is a pure function of its
//! bytes: the same supplier certificates arrive in every 6.23, so the
//! parse is done once per distinct encoding and the shared [`Certificate`]
//! handed out after that. Only successes are kept (a malformed certificate
//! is parsed again, and refused again, every time). Nothing that can change
//! with time (validity, revocation, trust) is decided by the parse, so a
//! hit can never change a verdict.
//!
//! The bound is [`Bounded`]: two generations, at most `capacity` entries.
//!
//! Keys are hashed with foldhash, randomly seeded per map, not SipHash: a
//! key here is often a whole certificate's text (~600 bytes, four per 6.23
//! request), where SipHash costs more than the look-up is worth. Keys are
//! still compared in full, so a collision costs time, never a wrong hit;
//! the random seed keeps collisions from being chosen in advance, and the
//! bound keeps any chain short.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::cert::{CertError, Certificate};

/// A bounded map for caches: two generations of at most `capacity / 2`
/// entries each. A hit in the older generation is promoted; when the young
/// generation is full the old one is dropped. At most `capacity` entries
/// are held, and an entry in steady use is never evicted. Thread-safe.
#[derive(Debug)]
pub struct Bounded<K, V> {
    half: usize,
    gens: Mutex<Generations<K, V>>,
}

/// The maps of [`Bounded`]: foldhash with a random seed (see the module doc).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
struct Generations<K, V> {
    young: Map<K, V>,
    old: Map<K, V>,
    hits: u64,
    misses: u64,
}

/// Hit and miss counts of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Look-ups answered from the cache.
    pub hits: u64,
    /// Look-ups that missed.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    /// A map holding at most `capacity` entries (at least 2).
    pub fn new(capacity: usize) -> Self {
        Bounded {
            half: (capacity / 2).max(1),
            gens: Mutex::new(Generations {
                young: Map::default(),
                old: Map::default(),
                hits: 0,
                misses: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<K, V>> {
        // The maps stay consistent whatever panicked while holding the lock.
        self.gens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key`, counted as a hit or a miss.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut g = self.lock();
        if let Some(v) = g.young.get(key) {
            let v = v.clone();
            g.hits += 1;
            return Some(v);
        }
        if let Some((k, v)) = g.old.remove_entry(key) {
            g.hits += 1;
            self.put(&mut g, k, v.clone());
            return Some(v);
        }
        g.misses += 1;
        None
    }

    /// Hold `value` for `key` (replacing any value held).
    pub fn insert(&self, key: K, value: V) {
        let mut g = self.lock();
        g.old.remove(&key);
        self.put(&mut g, key, value);
    }

    fn put(&self, g: &mut Generations<K, V>, key: K, value: V) {
        if g.young.len() >= self.half && !g.young.contains_key(&key) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, value);
    }

    /// Hits, misses and size.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            hits: g.hits,
            misses: g.misses,
            len: g.young.len() + g.old.len(),
        }
    }

    /// Drop every entry.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.young.clear();
        g.old.clear();
    }
}

/// A bounded map from a certificate's encoding (the DER, or the exact text
/// it is decoded from) to the parsed certificate.
#[derive(Debug)]
pub struct CertCache(Bounded<Box<[u8]>, Certificate>);

impl CertCache {
    /// A cache holding at most `capacity` certificates (at least 2).
    pub fn new(capacity: usize) -> Self {
        CertCache(Bounded::new(capacity))
    }

    /// The certificate encoded by `key`, parsed by `parse` on a miss (and
    /// kept only when it parsed). `key` must determine the certificate: its
    /// DER, or the exact text the DER is decoded from. The parse runs
    /// outside the lock.
    pub fn get_or_parse(
        &self,
        key: &[u8],
        parse: impl FnOnce() -> Result<Certificate, CertError>,
    ) -> Result<Certificate, CertError> {
        if let Some(c) = self.0.get(key) {
            return Ok(c);
        }
        let cert = parse()?;
        self.0.insert(key.into(), cert.clone());
        Ok(cert)
    }

    /// [`Certificate::from_der`] through the cache, keyed by the DER.
    pub fn from_der(&self, der: &[u8]) -> Result<Certificate, CertError> {
        self.get_or_parse(der, || Certificate::from_der(der))
    }

    /// Hits, misses and size.
    pub fn stats(&self) -> CacheStats {
        self.0.stats()
    }

    /// Drop every entry.
    pub fn clear(&self) {
        self.0.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpki::{TestPki, TestPkiSpec};

    fn certs() -> Vec<Certificate> {
        let pki = TestPki::generate(&TestPkiSpec::default()).unwrap();
        [
            pki.root(),
            pki.issuing_ca(),
            pki.device_ca(),
            pki.tcos(),
            pki.ecos(),
            pki.acb_ka(),
        ]
        .into_iter()
        .map(|c| c.cert.clone())
        .collect()
    }

    #[test]
    fn hit_returns_the_same_certificate_and_failures_are_not_kept() {
        let cache = CertCache::new(16);
        let c = &certs()[0];
        let a = cache.from_der(c.der()).unwrap();
        let b = cache.from_der(c.der()).unwrap();
        assert_eq!(&a, c);
        assert_eq!(a, b);
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(cache.stats().misses, 1);
        // A malformed certificate is refused every time, never cached.
        for _ in 0..2 {
            assert!(cache.from_der(&c.der()[..10]).is_err());
        }
        assert_eq!(cache.stats().len, 1);
        assert_eq!(cache.stats().misses, 3);
    }

    #[test]
    fn bounded_and_keeps_what_is_in_use() {
        let all = certs();
        assert!(
            all.len() >= 4,
            "the test PKI has {} certificates",
            all.len()
        );
        let cache = CertCache::new(2);
        let hot = &all[0];
        for c in all.iter().cycle().take(all.len() * 5) {
            cache.from_der(c.der()).unwrap();
            cache.from_der(hot.der()).unwrap();
            assert!(cache.stats().len <= 2, "{:?}", cache.stats());
        }
        // The hot certificate stays in.
        let before = cache.stats().misses;
        assert_eq!(&cache.from_der(hot.der()).unwrap(), hot);
        assert_eq!(cache.stats().misses, before);
    }
}
