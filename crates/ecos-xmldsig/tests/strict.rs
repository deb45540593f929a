//! The strict verifier: every departure from the DUIS profile is rejected
//! with its own error, and wrapping tricks cannot change what is processed.
//! Runs anywhere: keys are generated, documents are built here.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ecos_smki::{P256PublicKey, Signer, SoftwareSigner};
use ecos_xmldsig::c14n::{self, Options};
use ecos_xmldsig::{
    AlgorithmSlot, DS_NS, DsigError, Limits, MatchedForm, VerifyOptions, parse, sign, verify,
    verify_with,
};

const ISSUER: &str = "CN=Z1,OU=07";
const SERIAL: &str = "27572613927499351639968579586655397031";

const REQUEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" schemaVersion="5.4">
  <sr:Header>
    <sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID>
    <sr:CommandVariant>1</sr:CommandVariant>
    <sr:ServiceReference>6.23</sr:ServiceReference>
    <sr:ServiceReferenceVariant>6.23</sr:ServiceReferenceVariant>
  </sr:Header>
  <sr:Body>
    <sr:UpdateSecurityCredentialsCoS>
      <sr:SupplierFloorSeqNumber>0</sr:SupplierFloorSeqNumber>
      <sr:ImportMPxN>1312345678333</sr:ImportMPxN>
    </sr:UpdateSecurityCredentialsCoS>
  </sr:Body>
</sr:Request>
"#;

fn signer() -> SoftwareSigner {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    SoftwareSigner::from_bytes(pkcs8.as_ref()).unwrap()
}

struct Fixture {
    key: P256PublicKey,
    signed: String,
}

fn fixture() -> Fixture {
    let s = signer();
    let signed = sign(REQUEST.as_bytes(), &s, ISSUER, SERIAL).unwrap();
    Fixture {
        key: s.public_key().clone(),
        signed: String::from_utf8(signed).unwrap(),
    }
}

impl Fixture {
    fn verify(&self, doc: &str) -> Result<ecos_xmldsig::Verified, DsigError> {
        verify(doc.as_bytes(), &Limits::default(), |i, s| {
            (i == ISSUER && s == SERIAL).then(|| self.key.clone())
        })
    }
    /// The signed document with `from` replaced by `to` (exactly once).
    fn with(&self, from: &str, to: &str) -> String {
        assert_eq!(self.signed.matches(from).count(), 1, "{from:?} occurs once");
        self.signed.replacen(from, to, 1)
    }
    fn signature_value(&self) -> Vec<u8> {
        let start = self.signed.find("<ds:SignatureValue>").unwrap() + 19;
        let end = self.signed.find("</ds:SignatureValue>").unwrap();
        STANDARD.decode(&self.signed[start..end]).unwrap()
    }
    fn with_signature_value(&self, raw: &[u8]) -> String {
        let start = self.signed.find("<ds:SignatureValue>").unwrap() + 19;
        let end = self.signed.find("</ds:SignatureValue>").unwrap();
        format!(
            "{}{}{}",
            &self.signed[..start],
            STANDARD.encode(raw),
            &self.signed[end..]
        )
    }
}

#[test]
fn round_trip_output_shape_and_signed_content() {
    let f = fixture();
    assert!(f.signed.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?><sr:Request xmlns:sr="
    ));
    // Compact: no whitespace between elements; the signature last in the root.
    assert!(!f.signed.contains(">\n") && !f.signed.contains("> <"));
    assert!(
        f.signed
            .ends_with("</ds:KeyInfo></ds:Signature></sr:Request>")
    );
    assert!(
        f.signed
            .contains("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">")
    );
    let v = f.verify(&f.signed).unwrap();
    assert_eq!((v.issuer.as_str(), v.serial.as_str()), (ISSUER, SERIAL));
    assert_eq!(v.form, MatchedForm::Strict);
    let signed = String::from_utf8(v.signed_xml).unwrap();
    assert!(signed.starts_with("<sr:Request xmlns:sr="));
    assert!(signed.contains("<sr:ImportMPxN>1312345678333</sr:ImportMPxN>"));
    assert!(!signed.contains("Signature"));

    // What was signed is exactly the exclusive C14N of the SignedInfo written.
    let doc = parse(f.signed.as_bytes(), &Limits::default()).unwrap();
    let si = doc
        .descendants()
        .find(|n| n.tag_name().name() == "SignedInfo")
        .unwrap();
    let si_c14n = c14n::subtree_to_vec(si, Options::EXCLUSIVE);
    assert!(si_c14n.starts_with(b"<ds:SignedInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:CanonicalizationMethod"));
    f.key.verify(&si_c14n, &f.signature_value()).unwrap();
}

#[test]
fn signing_reuses_a_root_ds_declaration_and_refuses_a_signed_document() {
    let s = signer();
    let doc = REQUEST.replace(
        "xmlns:xsi=",
        "xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" xmlns:xsi=",
    );
    let out = String::from_utf8(sign(doc.as_bytes(), &s, ISSUER, SERIAL).unwrap()).unwrap();
    assert!(out.contains("<ds:Signature><ds:SignedInfo>"));
    verify(out.as_bytes(), &Limits::default(), |_, _| {
        Some(s.public_key().clone())
    })
    .unwrap();
    // A root that binds ds to something else: the signature declares its own.
    let doc = REQUEST.replace("xmlns:xsi=", "xmlns:ds=\"urn:other\" xmlns:xsi=");
    let out = String::from_utf8(sign(doc.as_bytes(), &s, ISSUER, SERIAL).unwrap()).unwrap();
    assert!(out.contains("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"));
    verify(out.as_bytes(), &Limits::default(), |_, _| {
        Some(s.public_key().clone())
    })
    .unwrap();
    assert!(matches!(
        sign(out.as_bytes(), &s, ISSUER, SERIAL),
        Err(DsigError::AlreadySigned { .. })
    ));
    assert!(matches!(
        sign(REQUEST.as_bytes(), &s, ISSUER, "0x12"),
        Err(DsigError::SerialNumber { .. })
    ));
    assert!(matches!(
        sign(REQUEST.as_bytes(), &s, " ", SERIAL),
        Err(DsigError::IssuerName)
    ));
}

#[test]
fn missing_and_second_signatures() {
    let f = fixture();
    let start = f.signed.find("<ds:Signature").unwrap();
    let end = f.signed.find("</sr:Request>").unwrap();
    let sig = &f.signed[start..end];
    let unsigned = format!("{}{}", &f.signed[..start], &f.signed[end..]);
    assert!(matches!(
        f.verify(&unsigned),
        Err(DsigError::MissingSignature)
    ));
    // Twice at the end of the root.
    let twice = format!("{}{sig}{sig}{}", &f.signed[..start], &f.signed[end..]);
    assert!(matches!(
        f.verify(&twice),
        Err(DsigError::MultipleSignatures { count: 2, .. })
    ));
    // A second one hidden in the body.
    let hidden = f.with("</sr:Body>", &format!("{sig}</sr:Body>"));
    match f.verify(&hidden) {
        Err(DsigError::MultipleSignatures { count: 2, paths }) => {
            assert!(
                paths
                    .iter()
                    .any(|p| p == "/sr:Request/sr:Body/ds:Signature"),
                "{paths:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Under another prefix, still the XML-DSig namespace: still a signature.
    let other_prefix = f.with(
        "</sr:Body>",
        "<x:Signature xmlns:x=\"http://www.w3.org/2000/09/xmldsig#\"/></sr:Body>",
    );
    assert!(matches!(
        f.verify(&other_prefix),
        Err(DsigError::MultipleSignatures { .. })
    ));
}

#[test]
fn signature_must_be_the_last_child_of_the_root() {
    let f = fixture();
    let start = f.signed.find("<ds:Signature").unwrap();
    let end = f.signed.find("</sr:Request>").unwrap();
    let sig = &f.signed[start..end];
    let unsigned = format!("{}{}", &f.signed[..start], &f.signed[end..]);
    // Moved into the body.
    let inside = unsigned.replacen("</sr:Body>", &format!("{sig}</sr:Body>"), 1);
    assert!(matches!(
        f.verify(&inside),
        Err(DsigError::SignatureNotInRoot { .. })
    ));
    // Before the body.
    let before = unsigned.replacen("<sr:Body>", &format!("{sig}<sr:Body>"), 1);
    match f.verify(&before) {
        Err(DsigError::SignatureNotLast { found, .. }) => assert!(found.contains("sr:Body")),
        other => panic!("{other:?}"),
    }
    // Followed by text, a comment or a PI.
    for tail in ["x", "<!--c-->", "<?pi?>", "<sr:Extra/>"] {
        let doc = f.with("</sr:Request>", &format!("{tail}</sr:Request>"));
        assert!(
            matches!(f.verify(&doc), Err(DsigError::SignatureNotLast { .. })),
            "{tail}"
        );
    }
    // Trailing whitespace is not content: accepted (it is digested as signed).
    let ws = f.with("</ds:Signature>", "</ds:Signature>\n");
    assert!(matches!(f.verify(&ws), Err(DsigError::DigestMismatch)));
}

#[test]
fn algorithms_other_than_the_profiles_are_rejected() {
    let f = fixture();
    let cases = [
        (
            "http://www.w3.org/2001/10/xml-exc-c14n#\"",
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"",
            AlgorithmSlot::Canonicalization,
        ),
        (
            "http://www.w3.org/2001/10/xml-exc-c14n#\"",
            "http://www.w3.org/2001/10/xml-exc-c14n#WithComments\"",
            AlgorithmSlot::Canonicalization,
        ),
        (
            "xmldsig-more#ecdsa-sha256",
            "xmldsig-more#rsa-sha256",
            AlgorithmSlot::Signature,
        ),
        (
            "http://www.w3.org/2001/04/xmlenc#sha256",
            "http://www.w3.org/2000/09/xmldsig#sha1",
            AlgorithmSlot::Digest,
        ),
    ];
    for (from, to, slot) in cases {
        match f.verify(&f.with(from, to)) {
            Err(DsigError::AlgorithmNotInProfile { slot: s, .. }) => assert_eq!(s, slot),
            other => panic!("{to}: {other:?}"),
        }
    }
    // A missing Algorithm attribute is an algorithm outside the profile too.
    let no_alg = f.with(
        "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256\"></ds:SignatureMethod>",
        "<ds:SignatureMethod></ds:SignatureMethod>",
    );
    assert!(matches!(
        f.verify(&no_alg),
        Err(DsigError::AlgorithmNotInProfile {
            slot: AlgorithmSlot::Signature,
            ..
        })
    ));
    // HMACOutputLength or any child of SignatureMethod.
    let child = f.with(
        "ecdsa-sha256\"></ds:SignatureMethod>",
        "ecdsa-sha256\"><ds:HMACOutputLength>8</ds:HMACOutputLength></ds:SignatureMethod>",
    );
    assert!(matches!(
        f.verify(&child),
        Err(DsigError::UnexpectedInSignature { .. })
    ));
    // InclusiveNamespaces.
    let incl = f.with(
        "xml-exc-c14n#\"></ds:CanonicalizationMethod>",
        "xml-exc-c14n#\"><ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" PrefixList=\"sr\"/></ds:CanonicalizationMethod>",
    );
    assert!(matches!(
        f.verify(&incl),
        Err(DsigError::InclusiveNamespaces { .. })
    ));
}

#[test]
fn references_and_transforms_other_than_the_profiles_are_rejected() {
    let f = fixture();
    for (to, found) in [
        ("URI=\"#body\"", Some("#body")),
        ("URI=\"#xpointer(/)\"", Some("#xpointer(/)")),
        ("", None),
    ] {
        match f.verify(&f.with("URI=\"\"", to)) {
            Err(DsigError::ReferenceUriNotInProfile { found: got }) => {
                assert_eq!(got.as_deref(), found)
            }
            other => panic!("{to}: {other:?}"),
        }
    }
    let r_start = f.signed.find("<ds:Reference ").unwrap();
    let r_end = f.signed.find("</ds:Reference>").unwrap() + "</ds:Reference>".len();
    let reference = &f.signed[r_start..r_end];
    let two = f.with(reference, &format!("{reference}{reference}"));
    assert!(matches!(
        f.verify(&two),
        Err(DsigError::ReferenceCount { count: 2 })
    ));
    let none = f.with(reference, "");
    assert!(matches!(
        f.verify(&none),
        Err(DsigError::ReferenceCount { count: 0 })
    ));

    let env = "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></ds:Transform>";
    let exc = "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:Transform>";
    let xpath = "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\"><ds:XPath>/</ds:XPath></ds:Transform>";
    for to in [
        format!("{env}{exc}"),
        exc.to_string(),
        xpath.to_string(),
        String::new(),
        format!("{env}{env}"),
    ] {
        match f.verify(&f.with(env, &to)) {
            Err(DsigError::TransformsNotInProfile { .. }) => {}
            other => panic!("{to}: {other:?}"),
        }
    }
    let no_transforms = f.with(&format!("<ds:Transforms>{env}</ds:Transforms>"), "");
    assert!(matches!(
        f.verify(&no_transforms),
        Err(DsigError::TransformsNotInProfile { found }) if found.is_empty()
    ));
    // Reference Id/Type attributes are not in the profile.
    let typed = f.with("URI=\"\"", "URI=\"\" Type=\"urn:x\"");
    assert!(matches!(
        f.verify(&typed),
        Err(DsigError::UnexpectedInSignature { .. })
    ));
}

#[test]
fn signature_values_other_than_raw_64_bytes_are_rejected() {
    let f = fixture();
    let raw = f.signature_value();
    assert_eq!(raw.len(), 64);
    // DER of the same (r, s).
    let der_int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = vec![0x02];
        if x[0] & 0x80 != 0 {
            v.push(x.len() as u8 + 1);
            v.push(0);
        } else {
            v.push(x.len() as u8);
        }
        v.extend_from_slice(&x);
        v
    };
    let mut body = der_int(&raw[..32]);
    body.extend(der_int(&raw[32..]));
    let mut der = vec![0x30, body.len() as u8];
    der.extend(body);
    match f.verify(&f.with_signature_value(&der)) {
        Err(DsigError::SignatureValueLength {
            looks_like_der: true,
            len,
        }) => assert_eq!(len, der.len()),
        other => panic!("{other:?}"),
    }
    for len in [63, 65, 32, 0] {
        let mut v = raw.clone();
        v.resize(len, 1);
        match f.verify(&f.with_signature_value(&v)) {
            Err(DsigError::SignatureValueLength {
                len: l,
                looks_like_der: false,
            }) => assert_eq!(l, len),
            other => panic!("{len}: {other:?}"),
        }
    }
    let mut zero_r = raw.clone();
    zero_r[..32].fill(0);
    assert!(matches!(
        f.verify(&f.with_signature_value(&zero_r)),
        Err(DsigError::SignatureValueOutOfRange)
    ));
    let mut big_s = raw.clone();
    big_s[32..].fill(0xFF);
    assert!(matches!(
        f.verify(&f.with_signature_value(&big_s)),
        Err(DsigError::SignatureValueOutOfRange)
    ));
    let mut flipped = raw.clone();
    flipped[40] ^= 1;
    assert!(matches!(
        f.verify(&f.with_signature_value(&flipped)),
        Err(DsigError::BadSignature)
    ));
    let garbage = f.with("<ds:SignatureValue>", "<ds:SignatureValue>*");
    assert!(matches!(
        f.verify(&garbage),
        Err(DsigError::Base64 {
            element: "SignatureValue"
        })
    ));
    // Wrapped base64 with CR (as `&#13;`) and LF is fine.
    let b64 = STANDARD.encode(&raw);
    let wrapped = f.with(&b64, &format!("{}&#13;\n{}", &b64[..76], &b64[76..]));
    f.verify(&wrapped).unwrap();
}

#[test]
fn digest_values_and_digest_mismatches() {
    let f = fixture();
    let start = f.signed.find("<ds:DigestValue>").unwrap() + 16;
    let end = f.signed.find("</ds:DigestValue>").unwrap();
    let dv = &f.signed[start..end];
    let short = f.with(dv, &STANDARD.encode([7u8; 20]));
    assert!(matches!(
        f.verify(&short),
        Err(DsigError::DigestValueLength { len: 20 })
    ));
    let bad = f.with(dv, "!!!!");
    assert!(matches!(
        f.verify(&bad),
        Err(DsigError::Base64 {
            element: "DigestValue"
        })
    ));
    // Any change to the content: digest mismatch.
    for (from, to) in [
        ("1312345678333", "1312345678334"),
        (
            "schemaVersion=\"5.4\"",
            "schemaVersion=\"5.4\" xmlns:extra=\"urn:x\"",
        ),
        (
            "<sr:CommandVariant>1</sr:CommandVariant>",
            "<sr:CommandVariant>1</sr:CommandVariant><?pi x?>",
        ),
    ] {
        assert!(
            matches!(f.verify(&f.with(from, to)), Err(DsigError::DigestMismatch)),
            "{to}"
        );
    }
    // A different DigestValue that matches nothing.
    let other = f.with(dv, &STANDARD.encode([7u8; 32]));
    assert!(matches!(f.verify(&other), Err(DsigError::DigestMismatch)));
}

#[test]
fn key_info_other_than_one_issuer_serial_is_rejected() {
    let f = fixture();
    let ki_start = f.signed.find("<ds:KeyInfo>").unwrap();
    let ki_end = f.signed.find("</ds:KeyInfo>").unwrap() + "</ds:KeyInfo>".len();
    let ki = &f.signed[ki_start..ki_end];
    let is_start = f.signed.find("<ds:X509IssuerSerial>").unwrap();
    let is_end = f.signed.find("</ds:X509IssuerSerial>").unwrap() + "</ds:X509IssuerSerial>".len();
    let is = &f.signed[is_start..is_end];
    for to in [
        "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIB</ds:X509Certificate></ds:X509Data></ds:KeyInfo>".to_string(),
        "<ds:KeyInfo><ds:KeyValue><ds:ECKeyValue/></ds:KeyValue></ds:KeyInfo>".to_string(),
        "<ds:KeyInfo><ds:RetrievalMethod URI=\"http://example.invalid/c\"/></ds:KeyInfo>".to_string(),
        "<ds:KeyInfo></ds:KeyInfo>".to_string(),
        format!("<ds:KeyInfo><ds:X509Data>{is}<ds:X509Certificate>MIIB</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"),
        format!("<ds:KeyInfo><ds:X509Data>{is}</ds:X509Data><ds:X509Data>{is}</ds:X509Data></ds:KeyInfo>"),
        format!("<ds:KeyInfo><ds:KeyName>k</ds:KeyName><ds:X509Data>{is}</ds:X509Data></ds:KeyInfo>"),
    ] {
        match f.verify(&f.with(ki, &to)) {
            Err(DsigError::KeyInfoNotInProfile { .. }) => {}
            other => panic!("{to}: {other:?}"),
        }
    }
    let no_ki = f.with(ki, "");
    assert!(matches!(
        f.verify(&no_ki),
        Err(DsigError::MissingInSignature {
            missing: "KeyInfo",
            ..
        })
    ));
    for serial in ["0123", "12a", "-5", ""] {
        let doc = f.with(&format!(">{SERIAL}<"), &format!(">{serial}<"));
        assert!(
            matches!(f.verify(&doc), Err(DsigError::SerialNumber { .. })),
            "{serial}"
        );
    }
    let no_issuer = f.with(&format!(">{ISSUER}<"), "> <");
    assert!(matches!(f.verify(&no_issuer), Err(DsigError::IssuerName)));
    // An issuer/serial nobody knows.
    let unknown = f.with(&format!(">{SERIAL}<"), ">42<");
    match f.verify(&unknown) {
        Err(DsigError::UnknownSigner { issuer, serial }) => {
            assert_eq!((issuer.as_str(), serial.as_str()), (ISSUER, "42"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn anything_else_inside_the_signature_is_rejected() {
    let f = fixture();
    for (from, to) in [
        (
            "</ds:KeyInfo>",
            "</ds:KeyInfo><ds:Object><sr:Body/></ds:Object>",
        ),
        (
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Id=\"s\">",
        ),
        ("<ds:SignedInfo>", "<ds:SignedInfo>text"),
        ("<ds:SignedInfo>", "<ds:SignedInfo><!--c-->"),
        ("</ds:SignedInfo>", "<?pi?></ds:SignedInfo>"),
        ("<ds:SignatureValue>", "<ds:SignatureValue Id=\"v\">"),
        ("<ds:X509SerialNumber>", "<ds:X509SerialNumber><ds:x/>"),
    ] {
        match f.verify(&f.with(from, to)) {
            Err(DsigError::UnexpectedInSignature { .. }) => {}
            other => panic!("{to}: {other:?}"),
        }
    }
    // Order of the three parts.
    let sv_start = f.signed.find("<ds:SignatureValue>").unwrap();
    let sv_end = f.signed.find("</ds:SignatureValue>").unwrap() + "</ds:SignatureValue>".len();
    let sv = &f.signed[sv_start..sv_end];
    let reordered = f
        .with(sv, "")
        .replacen("</ds:KeyInfo>", &format!("</ds:KeyInfo>{sv}"), 1);
    assert!(matches!(
        f.verify(&reordered),
        Err(DsigError::UnexpectedInSignature { .. })
    ));
    let no_si_start = f.signed.find("<ds:SignedInfo>").unwrap();
    let no_si_end = f.signed.find("</ds:SignedInfo>").unwrap() + "</ds:SignedInfo>".len();
    let no_si = f.with(&f.signed[no_si_start..no_si_end], "");
    assert!(matches!(
        f.verify(&no_si),
        Err(DsigError::UnexpectedInSignature { .. })
    ));
}

#[test]
fn wrapping_tricks_cannot_change_the_processed_content() {
    let f = fixture();
    // Comments do not take part in the digest, so a comment can be slipped
    // into a value without breaking the signature: a reader of the received
    // tree that takes the first text node would see "1312345678". The signed
    // content handed back has no comment, so it reads the signed value.
    let split = f.with("1312345678333", "1312345678<!--x-->333");
    let received = parse(split.as_bytes(), &Limits::default()).unwrap();
    let first_text = received
        .descendants()
        .find(|n| n.tag_name().name() == "ImportMPxN")
        .and_then(|n| n.text())
        .unwrap();
    assert_eq!(first_text, "1312345678");
    let v = f.verify(&split).unwrap();
    let signed = parse(&v.signed_xml, &Limits::default()).unwrap();
    let value = signed
        .descendants()
        .find(|n| n.tag_name().name() == "ImportMPxN")
        .and_then(|n| n.text())
        .unwrap();
    assert_eq!(value, "1312345678333");
    // The same for comments and CDATA around the root and in content.
    let decorated = f
        .with("<sr:Request xmlns", "<!--before--><sr:Request xmlns")
        .replacen(
            "<sr:CommandVariant>1<",
            "<sr:CommandVariant><![CDATA[1]]><",
            1,
        );
    let v2 = f.verify(&decorated).unwrap();
    assert_eq!(v2.signed_xml, v.signed_xml);
    // A copy of the signed body placed where a lax processor might look
    // (after the signature, in a second root-level Body) is rejected.
    let body_start = f.signed.find("<sr:Body>").unwrap();
    let body_end = f.signed.find("</sr:Body>").unwrap() + "</sr:Body>".len();
    let evil_body = f.signed[body_start..body_end].replace("1312345678333", "9999999999999");
    let appended = f.with("</ds:Signature>", &format!("</ds:Signature>{evil_body}"));
    assert!(matches!(
        f.verify(&appended),
        Err(DsigError::SignatureNotLast { .. })
    ));
    // Or moved to the front with the original kept: the digest changes.
    let prepended = f.with("<sr:Header>", &format!("{evil_body}<sr:Header>"));
    assert!(matches!(
        f.verify(&prepended),
        Err(DsigError::DigestMismatch)
    ));
    // A namespace trick: rebinding the prefix to a look-alike URI.
    let rebound = f.with(
        "xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway\"",
        "xmlns:sr=\"http://www.dccinterface.co.uk/ServiceUserGateway \"",
    );
    assert!(matches!(f.verify(&rebound), Err(DsigError::DigestMismatch)));
    // A non-XML-DSig "Signature" element is content, and so is signed.
    let lookalike = f.with("</sr:Body>", "<sr:Signature/></sr:Body>");
    assert!(matches!(
        f.verify(&lookalike),
        Err(DsigError::DigestMismatch)
    ));
    assert!(DS_NS.ends_with("xmldsig#"));
}

#[test]
fn whitespace_compat_is_off_by_default_and_reports_the_form() {
    let f = fixture();
    let pretty = f.with("<sr:Header>", "\n  <sr:Header>");
    assert!(matches!(f.verify(&pretty), Err(DsigError::DigestMismatch)));
    let opts = VerifyOptions::default().with_whitespace_compat(true);
    let v = verify_with(pretty.as_bytes(), &opts, |_, _| Some(f.key.clone())).unwrap();
    assert_eq!(v.form, MatchedForm::WhitespaceStripped);
    // The strict form still wins when it matches.
    let v = verify_with(f.signed.as_bytes(), &opts, |_, _| Some(f.key.clone())).unwrap();
    assert_eq!(v.form, MatchedForm::Strict);
    // Changing real content is not whitespace.
    let changed = f
        .with("<sr:Header>", "\n  <sr:Header>")
        .replacen(":1006<", ":1007<", 1);
    assert!(matches!(
        verify_with(changed.as_bytes(), &opts, |_, _| Some(f.key.clone())),
        Err(DsigError::DigestMismatch)
    ));
}

#[test]
fn parse_errors_surface_as_parse_errors() {
    let f = fixture();
    let truncated = &f.signed[..f.signed.len() - 5];
    assert!(matches!(f.verify(truncated), Err(DsigError::Parse(_))));
    let small = Limits::default().with_max_bytes(100);
    assert!(matches!(
        verify(f.signed.as_bytes(), &small, |_, _| None),
        Err(DsigError::Parse(ecos_xmldsig::ParseError::TooLarge { .. }))
    ));
}
