//! Interoperability with the DCC Boxed signing tool (npm
//! `@smartdcc/duis-sign-wrap`, `dist/tool.jar`): its `Validate` accepts what
//! we sign, and we verify what its `Sign` signs, with a key and self-signed
//! certificate generated here. The jar is found through
//! `$ECOS_DCC_SIGNER_JAR` or in `.ci/node/` (where `.ci/run` installs it);
//! without Java or the jar the tests say so and skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ecos_smki::{Signer, SoftwareSigner};
use ecos_xmldsig::{Limits, MatchedForm, dn_eq, parse, sign, verify};

/// A DUIS 5.x request the tool's XSD accepts (8.2 Read Inventory).
const REQUEST_8_2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" schemaVersion="5.1">
  <sr:Header>
    <sr:RequestID>90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:1000</sr:RequestID>
    <sr:CommandVariant>8</sr:CommandVariant>
    <sr:ServiceReference>8.2</sr:ServiceReference>
    <sr:ServiceReferenceVariant>8.2</sr:ServiceReferenceVariant>
  </sr:Header>
  <sr:Body>
    <sr:ReadInventory>
      <sr:DeviceID>00-DB-12-34-56-78-90-A2</sr:DeviceID>
    </sr:ReadInventory>
  </sr:Body>
</sr:Request>
"#;

fn jar() -> Option<PathBuf> {
    let jar = std::env::var_os("ECOS_DCC_SIGNER_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../.ci/node/node_modules/@smartdcc/duis-sign-wrap/dist/tool.jar")
        });
    if !jar.is_file() {
        eprintln!(
            "SKIP: DCC signer jar not found at {} (run .ci/run or set ECOS_DCC_SIGNER_JAR)",
            jar.display()
        );
        return None;
    }
    let java = Command::new("java").arg("-version").output();
    if !java.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: java not found (the DCC signer needs a JRE >= 11)");
        return None;
    }
    Some(jar)
}

/// Run `java -cp JAR uk.co.smartdcc.boxed.xmldsig.<class> ARGS`: (exit code, stdout, stderr).
fn run_tool(jar: &Path, class: &str, args: &[&Path], extra: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new("java")
        .arg("-cp")
        .arg(jar)
        .arg(format!("uk.co.smartdcc.boxed.xmldsig.{class}"))
        .args(args)
        .args(extra)
        .output()
        .expect("run java");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// --- a minimal self-signed P-256 certificate, DER built by hand ---

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = body.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(body);
    v
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn der_uint(x: &[u8]) -> Vec<u8> {
    let mut x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
    if x.is_empty() || x[0] & 0x80 != 0 {
        x.insert(0, 0);
    }
    tlv(0x02, &x)
}

struct TestCert {
    pem: String,
    key_pem: String,
    signer: SoftwareSigner,
    issuer: &'static str,
    serial_decimal: String,
}

fn self_signed() -> TestCert {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let signer = SoftwareSigner::from_bytes(pkcs8.as_ref()).unwrap();
    let ecdsa_sha256 = tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]);
    let attr = |oid_last: u8, value: &str| {
        tlv(
            0x31,
            &seq(&[
                &tlv(0x06, &[0x55, 0x04, oid_last]),
                &tlv(0x13, value.as_bytes()),
            ]),
        )
    };
    // DER order OU then CN, as the SMKI issuers: RFC 2253 "CN=ecos interop,OU=07".
    let name = seq(&[&attr(0x0B, "07"), &attr(0x03, "ecos interop")]);
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).unwrap();
    serial[0] = (serial[0] & 0x3F) | 0x10;
    let validity = seq(&[&tlv(0x17, b"250101000000Z"), &tlv(0x17, b"491231235959Z")]);
    let spki = seq(&[
        &seq(&[
            &tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]),
            &tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]),
        ]),
        &tlv(0x03, &[&[0u8][..], signer.public_key().as_bytes()].concat()),
    ]);
    let key_usage = seq(&[
        &tlv(0x06, &[0x55, 0x1D, 0x0F]),
        &[0x01, 0x01, 0xFF],
        &tlv(0x04, &[0x03, 0x02, 0x07, 0x80]),
    ]);
    let tbs = seq(&[
        &tlv(0xA0, &der_uint(&[2])),
        &der_uint(&serial),
        &seq(&[&ecdsa_sha256]),
        &name,
        &validity,
        &name,
        &spki,
        &tlv(0xA3, &seq(&[&key_usage])),
    ]);
    let sig = signer.sign(&tbs).unwrap();
    let sig_der = seq(&[&der_uint(&sig[..32]), &der_uint(&sig[32..])]);
    let cert = seq(&[
        &tbs,
        &seq(&[&ecdsa_sha256]),
        &tlv(0x03, &[&[0u8][..], &sig_der].concat()),
    ]);
    let pem = |label: &str, der: &[u8]| {
        let b = STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    TestCert {
        pem: pem("CERTIFICATE", &cert),
        key_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        signer,
        issuer: "CN=ecos interop,OU=07",
        serial_decimal: common::decimal(&serial),
    }
}

#[test]
fn the_generated_certificate_is_what_we_think() {
    let c = self_signed();
    let id = common::signer_id_x509(c.pem.as_bytes());
    assert_eq!(id.issuer, c.issuer);
    assert_eq!(id.serial, c.serial_decimal);
    assert_eq!(&id.key, c.signer.public_key());
}

#[test]
fn the_dcc_validator_accepts_what_we_sign() {
    let Some(jar) = jar() else { return };
    let c = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &c.pem).unwrap();
    let msg = dir.path().join("signed.xml");

    let mut docs: Vec<(String, Vec<u8>)> = vec![("8.2".into(), REQUEST_8_2.as_bytes().to_vec())];
    if let Some(fx) = common::fixtures() {
        docs.push((
            "6.23".into(),
            std::fs::read(fx.join("duis-signed/6.23_IMMEDIATE.validated-unsigned.xml")).unwrap(),
        ));
    }
    for (what, unsigned) in docs {
        let signed = sign(&unsigned, &c.signer, c.issuer, &c.serial_decimal).unwrap();
        std::fs::write(&msg, &signed).unwrap();
        let (code, stdout, stderr) = run_tool(&jar, "Validate", &[&msg, &cert], &[]);
        assert_eq!(code, 0, "{what}: Validate refused our signature:\n{stderr}");
        assert!(stderr.contains("passed"), "{what}: {stderr}");
        // Validate prints the document without its signature.
        let printed = parse(&stdout, &Limits::default()).expect("Validate output parses");
        assert!(
            !printed
                .descendants()
                .any(|n| n.tag_name().name() == "Signature")
        );

        // And a tampered copy is refused by the tool too (the test is not vacuous).
        let tampered = String::from_utf8(signed)
            .unwrap()
            .replacen(":1000<", ":1001<", 1)
            .replacen(":1006<", ":1007<", 1);
        std::fs::write(&msg, tampered).unwrap();
        let (code, _, stderr) = run_tool(&jar, "Validate", &[&msg, &cert], &[]);
        assert_eq!(code, 10, "{what}: a tampered copy passed:\n{stderr}");
    }
}

#[test]
fn we_verify_what_the_dcc_signer_signs() {
    let Some(jar) = jar() else { return };
    let c = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let msg = dir.path().join("unsigned.xml");
    std::fs::write(&cert, &c.pem).unwrap();
    std::fs::write(&key, &c.key_pem).unwrap();
    std::fs::write(&msg, REQUEST_8_2).unwrap();

    let (code, signed, stderr) = run_tool(
        &jar,
        "Sign",
        &[&msg],
        &[
            "--preserveCounter",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "Sign failed:\n{stderr}");
    let v = verify(&signed, &Limits::default(), |issuer, serial| {
        (serial == c.serial_decimal && dn_eq(issuer, c.issuer))
            .then(|| c.signer.public_key().clone())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&signed)));
    assert_eq!(v.form, MatchedForm::Strict);
    assert!(dn_eq(&v.issuer, c.issuer), "{}", v.issuer);
    let content = String::from_utf8(v.signed_xml).unwrap();
    assert!(
        content.contains(":1000</sr:RequestID>"),
        "counter preserved: {content}"
    );

    // Default mode (counter replaced by epoch ms) verifies too, and the
    // content we hand back carries the replaced counter, as signed.
    let (code, signed, stderr) = run_tool(
        &jar,
        "Sign",
        &[&msg],
        &[cert.to_str().unwrap(), key.to_str().unwrap()],
    );
    assert_eq!(code, 0, "Sign failed:\n{stderr}");
    let v = verify(&signed, &Limits::default(), |_, serial| {
        (serial == c.serial_decimal).then(|| c.signer.public_key().clone())
    })
    .unwrap();
    let content = String::from_utf8(v.signed_xml).unwrap();
    assert!(!content.contains(":1000</sr:RequestID>"));

    // A pretty-printed copy of the tool's output is refused W3C-strictly.
    let pretty = String::from_utf8(signed)
        .unwrap()
        .replacen("<sr:Header>", "\n  <sr:Header>", 1);
    assert!(
        verify(pretty.as_bytes(), &Limits::default(), |_, _| Some(
            c.signer.public_key().clone()
        ))
        .is_err()
    );
}

/// The same round trip with the XML Sign credential of the SMKI test PKI that
/// `ecos pki init` writes (`ecos_smki::testpki`, demo spec): Supplier A's
/// OU-87 certificate, chained to the generated issuing CA.
#[test]
fn round_trip_with_the_test_pki_xml_sign_credential() {
    let Some(jar) = jar() else { return };
    let pki = ecos_smki::TestPki::generate(&ecos_smki::TestPkiSpec::demo()).unwrap();
    let org = pki
        .organisation(ecos_smki::Eui64::from_u64(0x90B3_D51F_3001_0000))
        .expect("Supplier A");
    let cred = &org.xml_sign;
    let signer = cred.signer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("xml-sign.pem");
    let key = dir.path().join("xml-sign.key");
    let msg = dir.path().join("msg.xml");
    std::fs::write(&cert, cred.cert.to_pem()).unwrap();
    std::fs::write(&key, cred.key_pem()).unwrap();
    let issuer = cred.cert.issuer_rfc2253();
    let serial = cred.cert.serial_decimal();

    // Ours → the DCC validator.
    let signed = sign(REQUEST_8_2.as_bytes(), &signer, &issuer, &serial).unwrap();
    std::fs::write(&msg, &signed).unwrap();
    let (code, _, stderr) = run_tool(&jar, "Validate", &[&msg, &cert], &[]);
    assert_eq!(code, 0, "Validate refused our signature:\n{stderr}");

    // The DCC signer → ours.
    std::fs::write(&msg, REQUEST_8_2).unwrap();
    let (code, signed, stderr) = run_tool(
        &jar,
        "Sign",
        &[&msg],
        &[
            "--preserveCounter",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "Sign failed:\n{stderr}");
    let v = verify(&signed, &Limits::default(), |i, s| {
        (s == serial && dn_eq(i, &issuer)).then(|| cred.cert.public_key().clone())
    })
    .unwrap();
    assert_eq!(v.serial, serial);
}
