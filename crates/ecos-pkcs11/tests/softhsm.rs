//! The CoS and DSP keys in a real PKCS#11 token: SoftHSM2 (Debian package
//! `softhsm2`, installed by `.ci/run`). The demo PKI's generated P-256 TCoS,
//! ECoS and DSP keys are imported into a fresh token; the 6.23 pipeline signs
//! through the token; the CS02b commands verify with the CoS certificates'
//! public keys (and not with the other CoS key), and a DUIS response signed
//! through the token verifies with the DSP certificate.
//!
//! SoftHSM2 reads its configuration (`SOFTHSM2_CONF`) when the module is
//! initialised, so the part that loads the module runs in a child process
//! (this test binary again) with the variable set to a token directory of
//! its own under a temporary directory. Skips with a message when SoftHSM2
//! is absent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ecos_party::demo::{self, RequestSpec};
use ecos_party::{Outcome, Party, PartyConfig};
use ecos_pkcs11::{Pkcs11Error, Token};
use ecos_smki::{MpidRules, Signer};
use ecos_store::{Store, StoreConfig, StoreLocation};

const TOKEN: &str = "ecos-test";
const PIN: &str = "87654321";
const CHILD: &str = "ECOS_PKCS11_TEST_CHILD";

#[path = "support/softhsm.rs"]
mod softhsm;
use softhsm::module;

/// A token under `dir` with the demo PKI's TCoS, ECoS and DSP keys imported
/// under their credential names.
fn init_token(dir: &Path) -> PathBuf {
    let pki_dir = dir.join("pki");
    demo::pki(1)
        .expect("PKI")
        .write_to(&pki_dir)
        .expect("write");
    softhsm::init_token(
        dir,
        TOKEN,
        PIN,
        &pki_dir,
        &[
            ("tcos-ds", "tcos-ds"),
            ("ecos-ds", "ecos-ds"),
            ("dsp-xml-sign", "dsp-xml-sign"),
        ],
    )
}

#[test]
fn cos_and_dsp_keys_sign_through_softhsm2() {
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(in_child());
        return;
    }
    if let Some(why) = softhsm::unavailable() {
        eprintln!("skipping the PKCS#11 test: {why}");
        return;
    }
    let module = module().expect("module");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = init_token(dir.path());
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "cos_and_dsp_keys_sign_through_softhsm2",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .env("ECOS_PKCS11_MODULE", &module)
        .env(CHILD, dir.path())
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("1 passed") && text.contains("PKCS#11 checks done"),
        "the child did not run the checks:\n{text}"
    );
}

async fn in_child() {
    let module = module().expect("module");
    let dir = PathBuf::from(std::env::var_os(CHILD).expect("child dir"));

    // Typed errors: a wrong PIN, a wrong token, a missing key.
    let e = Token::open(&module, TOKEN, "0000").unwrap_err();
    assert!(matches!(e, Pkcs11Error::Login { .. }), "{e}");
    let e = Token::open(&module, "no-such-token", PIN).unwrap_err();
    assert!(
        matches!(e, Pkcs11Error::TokenNotFound { .. }) && e.to_string().contains(TOKEN),
        "{e}"
    );
    let token = Token::open(&module, TOKEN, PIN).expect("open token");
    let e = token.signer("no-such-key").unwrap_err();
    assert!(matches!(e, Pkcs11Error::Key { found: 0, .. }), "{e}");

    let pki = demo::pki(1).expect("PKI");
    let software = demo::keys(&pki).expect("keys");
    let tcos = token.signer("tcos-ds").expect("tcos-ds");
    let ecos = token.signer("ecos-ds").expect("ecos-ds");
    let dsp = token.signer("dsp-xml-sign").expect("dsp-xml-sign");
    assert_eq!(tcos.public_key(), software.tcos.certificate.public_key());
    assert_eq!(ecos.public_key(), software.ecos.certificate.public_key());
    assert_eq!(dsp.public_key(), software.dsp_certificate.public_key());

    let mut keys = software.clone();
    keys.tcos.signer = Arc::new(tcos);
    keys.ecos.signer = Arc::new(ecos);
    keys.dsp = Arc::new(dsp);
    let store = Store::open(
        &StoreLocation::sqlite_in_dir(dir.join("db")),
        StoreConfig {
            gbcs_counter_floor: PartyConfig::default().counter_floor,
            ..StoreConfig::default()
        },
    )
    .await
    .expect("store");
    demo::load(&store, &pki).await.expect("demo data");
    let party = Party::new(
        PartyConfig::default(),
        MpidRules::default(),
        demo::registry(&pki),
        store,
        keys,
    );
    let base = u64::try_from(jiff::Timestamp::now().as_millisecond()).expect("now") * 100;
    for (i, (device, mpan, cert, other)) in [
        (
            demo::ESME_TCOS,
            demo::MPAN_1,
            &software.tcos.certificate,
            &software.ecos.certificate,
        ),
        (
            demo::ESME_ECOS,
            demo::MPAN_2,
            &software.ecos.certificate,
            &software.tcos.certificate,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let body = RequestSpec::new(demo::SUPPLIER_B, device, base + i as u64, mpan)
            .signed(&pki)
            .expect("request");
        let (answer, outcome) = party
            .process(&body, jiff::Timestamp::now())
            .await
            .expect("process");
        let Outcome::Accepted { command, .. } = outcome else {
            panic!("refused: {outcome:?}");
        };
        // The CS02b signed in the token verifies with the CoS certificate.
        let msg = ecos_gbcs::Message::decode(&command.bytes).expect("decode");
        msg.frame
            .verify_signature(cert.public_key())
            .expect("CS02b signature verifies with the CoS certificate");
        assert!(
            msg.frame.verify_signature(other.public_key()).is_err(),
            "verifies with the other CoS key too"
        );
        // A DUIS response signed in the token verifies with the DSP certificate.
        let signed = party.sign_response(&answer.body).expect("sign response");
        let dsp_cert = &software.dsp_certificate;
        let verified = ecos_xmldsig::verify(
            &signed,
            &ecos_xmldsig::Limits::default(),
            |issuer, serial| {
                (ecos_xmldsig::dn_eq(issuer, &dsp_cert.issuer_rfc2253())
                    && serial == dsp_cert.serial_decimal())
                .then(|| dsp_cert.public_key().clone())
            },
        );
        assert!(verified.is_ok(), "DSP-signed response: {verified:?}");
        let mut tampered = signed.clone();
        let at = tampered
            .windows(5)
            .position(|w| w == b"I99</")
            .expect("response code");
        tampered[at + 2] = b'8';
        assert!(
            ecos_xmldsig::verify(&tampered, &ecos_xmldsig::Limits::default(), |_, _| Some(
                dsp_cert.public_key().clone()
            ))
            .is_err(),
            "a tampered response verifies"
        );
    }
    println!("PKCS#11 checks done");
}
