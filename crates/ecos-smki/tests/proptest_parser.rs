//! Property tests: the certificate parser and the MPID reader never panic on
//! mutated or arbitrary input, and what they accept is self-consistent.

use std::sync::OnceLock;

use ecos_smki::{Certificate, MpidRules, Mpids, TestPki, TestPkiSpec};
use proptest::prelude::*;

/// Seed certificates of every kind: root, CAs, organisation, device.
fn seeds() -> &'static Vec<Vec<u8>> {
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    S.get_or_init(|| {
        let mut spec = TestPkiSpec::demo();
        spec.devices.truncate(1);
        let pki = TestPki::generate(&spec).unwrap();
        let o = &pki.organisations()[0];
        vec![
            pki.root().cert.der().to_vec(),
            pki.issuing_ca().cert.der().to_vec(),
            pki.device_ca().cert.der().to_vec(),
            o.xml_sign.cert.der().to_vec(),
            o.ka.cert.der().to_vec(),
            pki.devices()[0].ds.cert.der().to_vec(),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Set { at: usize, value: u8 },
    Truncate { len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, n: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..8).prop_map(|(at, n)| Mutation::Remove { at, n }),
    ]
}

fn apply(mut der: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = der.len().max(1);
        match m {
            Mutation::Flip { at, xor } => {
                if let Some(b) = der.get_mut(at % n) {
                    *b ^= xor;
                }
            }
            Mutation::Set { at, value } => {
                if let Some(b) = der.get_mut(at % n) {
                    *b = *value;
                }
            }
            Mutation::Truncate { len } => der.truncate(len % n),
            Mutation::Insert { at, bytes } => {
                let at = at % (der.len() + 1);
                der.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, n: k } => {
                let at = at % n;
                let end = (at + k).min(der.len());
                if at < end {
                    der.drain(at..end);
                }
            }
        }
    }
    der
}

fn check_accepted(der: &[u8], c: &Certificate) {
    assert_eq!(c.der(), der);
    assert!(c.serial().len() <= 20 && !c.serial().is_empty());
    assert!(c.not_before() <= c.not_after());
    assert_eq!(c.public_key().as_bytes().len(), 65);
    assert!(!c.serial_decimal().is_empty());
    let _ = c.subject_rfc2253();
    let _ = c.issuer_rfc2253();
    assert_eq!(Certificate::from_der(c.der()).unwrap(), *c);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_der_never_panics(
        which in 0usize..6,
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let der = apply(seeds()[which].clone(), &muts);
        let key = Certificate::public_key_of(&der);
        if let Ok(c) = Certificate::from_der(&der) {
            check_accepted(&der, &c);
            // What the full parse accepts, the key-only read reads alike.
            prop_assert_eq!(key.unwrap(), c.public_key().clone());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Certificate::from_der(&bytes);
        let _ = Certificate::from_pem_or_der(&bytes);
        let _ = Certificate::public_key_of(&bytes);
    }

    #[test]
    fn mangled_pem_never_panics(
        which in 0usize..6,
        cut in any::<usize>(),
        junk in "[ -~\\n\\r\\t]{0,20}",
    ) {
        let pem = Certificate::from_der(&seeds()[which]).unwrap().to_pem();
        let cut = cut % (pem.len() + 1);
        let mut text = pem.as_bytes()[..cut].to_vec();
        text.extend_from_slice(junk.as_bytes());
        text.extend_from_slice(&pem.as_bytes()[cut..]);
        let _ = Certificate::from_pem(&text);
    }

    #[test]
    fn mpids_never_panic_and_round_trip(cn in "\\PC{0,16}", lax in any::<bool>()) {
        let rules = MpidRules {
            strict_whitespace: !lax,
            allow_lowercase: lax,
            ..MpidRules::default()
        };
        if let Ok(m) = Mpids::from_cn(Some(&cn), &rules) {
            prop_assert!(!m.is_empty());
            prop_assert_eq!(Mpids::from_cn(Some(&m.to_cn()), &MpidRules::default()).unwrap(), m);
        }
    }

    #[test]
    fn well_formed_mpids_are_accepted(
        e in proptest::option::of("[A-Z0-9]{4}"),
        g in proptest::option::of("[A-Z0-9]{3}"),
        swap in any::<bool>(),
    ) {
        prop_assume!(e.is_some() || g.is_some());
        let mut toks: Vec<&str> = [e.as_deref(), g.as_deref()].into_iter().flatten().collect();
        if swap { toks.reverse(); }
        let m = Mpids::from_cn(Some(&toks.join(" ")), &MpidRules::default()).unwrap();
        prop_assert_eq!(m.electricity, e);
        prop_assert_eq!(m.gas, g);
    }
}
