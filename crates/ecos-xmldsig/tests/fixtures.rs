//! The shared DUIS fixtures: canonical forms against the reference signer's
//! output and libxml2, and verification of every signed sample.

mod common;

use common::{fixtures, have_xmllint, resolver, xmllint_batch, zaz1_cert};
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{
    AlgorithmSlot, DS_NS, DsigError, Limits, MatchedForm, VerifyOptions, parse, verify, verify_with,
};

fn read(fx: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(fx.join("duis-signed").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn signature_id(doc: &roxmltree::Document<'_>) -> roxmltree::NodeId {
    doc.descendants()
        .find(|n| n.tag_name().namespace() == Some(DS_NS) && n.tag_name().name() == "Signature")
        .expect("has a signature")
        .id()
}

#[test]
fn enveloped_c14n_equals_the_reference_signers_digested_bytes() {
    let Some(fx) = fixtures() else { return };
    for (signed, unsigned) in [
        (
            "6.23_IMMEDIATE.signed.xml",
            "6.23_IMMEDIATE.validated-unsigned.xml",
        ),
        (
            "dsp_response_8.2_I0_signed_dspXmlSign-OU89.xml",
            "dsp_response_8.2_I0.validated-unsigned.xml",
        ),
    ] {
        let bytes = read(&fx, signed);
        let doc = parse(&bytes, &Limits::default()).unwrap();
        let ours = c14n::document_to_vec(&doc, Options::INCLUSIVE, Some(signature_id(&doc)));
        let mut expected = read(&fx, unsigned);
        assert_eq!(
            expected.pop(),
            Some(b'\n'),
            "{unsigned} ends with the tool's LF"
        );
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&expected),
            "{signed}"
        );
    }
}

#[test]
fn canonical_forms_of_every_fixture_equal_libxml2() {
    let Some(fx) = fixtures() else { return };
    if !have_xmllint() {
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(fx.join("duis-signed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    assert!(names.len() >= 15);
    let docs: Vec<Vec<u8>> = names.iter().map(|n| read(&fx, n)).collect();
    for (flag, opts) in [
        ("--c14n", Options::INCLUSIVE.with_comments()),
        ("--exc-c14n", Options::EXCLUSIVE.with_comments()),
    ] {
        let theirs = xmllint_batch(flag, &docs);
        for ((name, doc), want) in names.iter().zip(&docs).zip(theirs) {
            let want = want.unwrap_or_else(|e| panic!("{name}: {e}"));
            let tree = parse(doc, &Limits::default()).unwrap();
            let ours = c14n::document_to_vec(&tree, opts, None);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&want),
                "{flag} {name}"
            );
        }
    }
}

#[test]
fn every_signed_6_23_sample_verifies_with_the_certificate_named_by_its_serial() {
    let Some(fx) = fixtures() else { return };
    // The by-supplier2 sample names GITTESTSUPPLIER2's 2025 re-issue (the
    // DigitalSigningCertificate the request carries); Z1-supplier2-ds is the
    // 2015 certificate for the same key.
    let supplier2 = zaz1_cert(&fx, "Z1-supplier2-ds.pem");
    let bytes = read(&fx, "6.23_IMMEDIATE.signed.by-supplier2-OU02-chained.xml");
    let doc = parse(&bytes, &Limits::default()).unwrap();
    let ds_b64 = doc
        .descendants()
        .find(|n| n.tag_name().name() == "DigitalSigningCertificate")
        .and_then(|n| n.text())
        .unwrap();
    let reissue = ecos_smki::Certificate::from_der(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, ds_b64).unwrap(),
    )
    .unwrap();
    assert_eq!(reissue.public_key(), &supplier2.key);
    let certs = vec![
        zaz1_cert(&fx, "xml-sign-90B3D51F30010000-ds.pem"),
        common::SignerId::from(&reissue),
    ];
    let cases = [
        ("6.23_IMMEDIATE.signed.xml", 0),
        ("6.23_FUTURE_DATED.signed.xml", 0),
        ("6.23_CANCELLATION.signed.xml", 0),
        ("6.23_IMMEDIATE.resigned.xml", 0),
        ("6.23_IMMEDIATE.signed.counter-replaced.xml", 0),
        ("interop_6.23_IMMEDIATE.compact.python-signed.xml", 0),
        ("interop_6.23_IMMEDIATE.pretty.w3c-signed.xml", 0),
        ("6.23_IMMEDIATE.signed.by-supplier2-OU02-chained.xml", 1),
    ];
    for (name, signer) in cases {
        let v = verify(&read(&fx, name), &Limits::default(), resolver(&certs))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.issuer, "CN=Z1,OU=07", "{name}");
        assert_eq!(v.serial, certs[signer].serial, "{name}");
        assert_eq!(v.form, MatchedForm::Strict, "{name}");
        // The signed content parses and holds the request, without a signature.
        let signed = parse(&v.signed_xml, &Limits::default()).unwrap();
        assert_eq!(signed.root_element().tag_name().name(), "Request");
        assert!(
            !signed
                .descendants()
                .any(|n| n.tag_name().name() == "Signature")
        );
        // And it is what a second, independent path digests: the signed
        // content re-canonicalised is itself.
        assert_eq!(
            c14n::document_to_vec(&signed, Options::INCLUSIVE, None),
            v.signed_xml
        );
    }
    // The wrong certificate is a bad signature, not a pass.
    let swapped = |issuer: &str, serial: &str| {
        (issuer == "CN=Z1,OU=07" && serial == certs[0].serial).then(|| certs[1].key.clone())
    };
    assert!(matches!(
        verify(
            &read(&fx, "6.23_IMMEDIATE.signed.xml"),
            &Limits::default(),
            swapped
        ),
        Err(DsigError::BadSignature)
    ));
}

#[test]
fn the_validated_unsigned_output_is_the_signed_content() {
    let Some(fx) = fixtures() else { return };
    let certs = vec![zaz1_cert(&fx, "xml-sign-90B3D51F30010000-ds.pem")];
    let v = verify(
        &read(&fx, "6.23_IMMEDIATE.signed.xml"),
        &Limits::default(),
        resolver(&certs),
    )
    .unwrap();
    let mut expected = read(&fx, "6.23_IMMEDIATE.validated-unsigned.xml");
    expected.pop();
    assert_eq!(v.signed_xml, expected);
}

#[test]
fn dsp_responses_verify_with_their_dsp_certificates() {
    let Some(fx) = fixtures() else { return };
    let certs = vec![
        zaz1_cert(&fx, "dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1.pem"),
        zaz1_cert(&fx, "Z1-accessControlBroker-dSPXmlSign.pem"),
    ];
    for (name, signer) in [
        ("dsp_response_11.2_I0_signed_dspXmlSign-OU137.xml", 0),
        ("dsp_response_8.2_I0_signed_dspXmlSign-OU89.xml", 1),
    ] {
        let v = verify(&read(&fx, name), &Limits::default(), resolver(&certs))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.serial, certs[signer].serial);
    }
    // The unsigned E65 error acknowledgement is not accepted as verified.
    assert!(matches!(
        verify(
            &read(&fx, "dsp_response_11.2_E65_unsigned.xml"),
            &Limits::default(),
            resolver(&certs)
        ),
        Err(DsigError::MissingSignature)
    ));
}

#[test]
fn negative_samples_are_rejected_each_with_its_own_error() {
    let Some(fx) = fixtures() else { return };
    let certs = vec![zaz1_cert(&fx, "xml-sign-90B3D51F30010000-ds.pem")];
    let r = |name: &str| verify(&read(&fx, name), &Limits::default(), resolver(&certs));
    assert!(matches!(
        r("neg_6.23_IMMEDIATE.tampered-mpxn.xml"),
        Err(DsigError::DigestMismatch)
    ));
    match r("neg_6.23_IMMEDIATE.DER-signaturevalue.xml") {
        Err(DsigError::SignatureValueLength {
            len,
            looks_like_der: true,
        }) => assert_ne!(len, 64),
        other => panic!("DER SignatureValue: {other:?}"),
    }
    match r("neg_strict_6.23_IMMEDIATE.inclusive-c14n-signedinfo.xml") {
        Err(DsigError::AlgorithmNotInProfile {
            slot: AlgorithmSlot::Canonicalization,
            found,
            ..
        }) => {
            assert_eq!(found, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
        }
        other => panic!("inclusive SignedInfo: {other:?}"),
    }
    // The templates carry a placeholder signature that is not in the profile's shape.
    for t in [
        "template_6.23_IMMEDIATE.xml",
        "template_6.23_FUTURE_DATED.xml",
        "template_6.23_CANCELLATION.xml",
    ] {
        assert!(r(t).is_err(), "{t}");
    }
}

#[test]
fn whitespace_compat_accepts_a_pretty_printed_copy_of_a_compact_signature() {
    let Some(fx) = fixtures() else { return };
    let certs = vec![zaz1_cert(&fx, "xml-sign-90B3D51F30010000-ds.pem")];
    let compact = String::from_utf8(read(&fx, "6.23_IMMEDIATE.signed.xml")).unwrap();
    // Indent the body (not the signature): what the Java tool would accept.
    let (body, sig) = compact.split_at(compact.find("<ds:Signature").unwrap());
    let pretty = body
        .replace("><sr:", ">\n  <sr:")
        .replace("></sr:", ">\n</sr:")
        + sig;
    assert_eq!(
        verify(pretty.as_bytes(), &Limits::default(), resolver(&certs))
            .unwrap_err()
            .to_string(),
        DsigError::DigestMismatch.to_string()
    );
    let v = verify_with(
        pretty.as_bytes(),
        &VerifyOptions::default().with_whitespace_compat(true),
        resolver(&certs),
    )
    .unwrap();
    assert_eq!(v.form, MatchedForm::WhitespaceStripped);
    let mut expected = read(&fx, "6.23_IMMEDIATE.validated-unsigned.xml");
    expected.pop();
    assert_eq!(v.signed_xml, expected);
}

#[test]
fn the_xxe_fixture_is_refused() {
    let Some(fx) = fixtures() else { return };
    let bytes = std::fs::read(fx.join("duis/duis-xxe.xml")).unwrap();
    let e = parse(&bytes, &Limits::default()).unwrap_err();
    assert!(matches!(e, ecos_xmldsig::ParseError::Doctype { .. }), "{e}");
    assert!(e.to_string().contains("DOCTYPE is disallowed"));
}
