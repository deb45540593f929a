//! Building the 6.23 (mode 7) and migration (mode 6) commands from the
//! values in the RTDS vectors reproduces them up to the signature.

mod common;

use std::path::Path;

use ecos_gbcs::{
    CertificateDer, Cs02bCommand, ExecutionDateTime, Frame, SupplierByTransCos, SupplierFloors,
    TransCosByTransCos, mac,
};
use ecos_smki::{Eui64, KeyAgreement, Signer, SoftwareKeyAgreement};

const TCOS: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x00, 0x00, 0x04]);
const DEVICE: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);

fn cert(path: &Path) -> CertificateDer {
    CertificateDer::new(common::cert_der(path)).unwrap()
}

fn mode7(fx: &Path, counter: u64, execution: Option<ExecutionDateTime>) -> Cs02bCommand {
    let ks = fx.join("keystore");
    Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
        counter,
        originator: TCOS,
        recipient: DEVICE,
        supplier_ds: cert(&ks.join("90b3d51f30030000-ds.pem")),
        supplier_ka: cert(&ks.join("90b3d51f30030000-ka.pem")),
        supplier_pp_ka: Some(cert(&ks.join("90b3d51f30030000-pp-ka.pem"))),
        certification_path: vec![cert(&fx.join("zaz1/Z1-issuing-ca.pem"))],
        apply_time_based_cpv_checks: true,
        supplier_floors: (execution != Some(ExecutionDateTime::Cancel)).then_some(SupplierFloors {
            floor: 0,
            prepayment_top_up_floor: Some(0),
        }),
        execution,
    })
    .unwrap()
}

/// Sign with `signer`, MAC with the ACB key, compare with the vector up to
/// the signature, verify signature and MAC.
fn check(fx: &Path, cmd: &Cs02bCommand, signer: &dyn Signer, dir: &str, name: &str) {
    let want = common::vector(fx, dir, name);
    let acb = common::ka(fx, common::ACB);
    let device_ka = common::cert_key(fx, DEVICE, "ka");
    let got = cmd.sign_and_mac(signer, &acb, &device_ka).unwrap();
    assert_eq!(got.len(), want.len(), "{name}: length");
    let frame = Frame::decode(&got).unwrap();
    let end = frame.content_range().end;
    assert_eq!(
        hex::encode_upper(&got[..end]),
        hex::encode_upper(&want[..end]),
        "{name}: bytes up to the signature"
    );
    assert_eq!(got[end], 0x40);
    frame.verify_signature(signer.public_key()).unwrap();
    frame
        .verify_signature(&common::cert_key(fx, TCOS, "ds"))
        .unwrap();
    mac::verify(&frame, &acb, &device_ka).unwrap();
    // The decoded command equals the one built.
    let msg = ecos_gbcs::Message::decode(&got).unwrap();
    assert_eq!(msg.command().as_ref(), Some(cmd));
}

const DIR623: &str = "6.23_CS02bSupplierByTransCoS";

#[test]
fn builds_6_23_immediate() {
    let Some(fx) = common::fixtures() else { return };
    let tcos = common::signer(&fx, common::TCOS_DS);
    let cmd = mode7(&fx, 6001, None);
    check(
        &fx,
        &cmd,
        &tcos,
        DIR623,
        "CS02bSupplierByTransCoS_6.23_IMMEDIATE_SUCCESS_COMMAND_GBCS.HEX",
    );
}

#[test]
fn builds_6_23_future_dated() {
    let Some(fx) = common::fixtures() else { return };
    let tcos = common::signer(&fx, common::TCOS_DS);
    let at = ExecutionDateTime::At(jiff::civil::datetime(2030, 1, 2, 0, 0, 0, 0));
    let cmd = mode7(&fx, 6002, Some(at));
    check(
        &fx,
        &cmd,
        &tcos,
        DIR623,
        "CS02bSupplierByTransCoS_6.23_FUTURE_DATED_SUCCESS_COMMAND_GBCS.HEX",
    );
}

#[test]
fn builds_6_23_cancellation() {
    let Some(fx) = common::fixtures() else { return };
    let tcos = common::signer(&fx, common::TCOS_DS);
    let cmd = mode7(&fx, 6003, Some(ExecutionDateTime::Cancel));
    check(
        &fx,
        &cmd,
        &tcos,
        DIR623,
        "CS02bSupplierByTransCoS_6.23_CANCELLATION_SUCCESS_COMMAND_GBCS.HEX",
    );
}

#[test]
fn cancellation_with_floors_is_refused() {
    let Some(fx) = common::fixtures() else { return };
    let ks = fx.join("keystore");
    let err = Cs02bCommand::supplier_by_trans_cos(SupplierByTransCos {
        counter: 1,
        originator: TCOS,
        recipient: DEVICE,
        supplier_ds: cert(&ks.join("90b3d51f30030000-ds.pem")),
        supplier_ka: cert(&ks.join("90b3d51f30030000-ka.pem")),
        supplier_pp_ka: None,
        certification_path: vec![],
        apply_time_based_cpv_checks: true,
        supplier_floors: Some(SupplierFloors {
            floor: 0,
            prepayment_top_up_floor: None,
        }),
        execution: Some(ExecutionDateTime::Cancel),
    })
    .unwrap_err();
    assert!(err.to_string().contains("cancellation"), "{err}");
}

#[test]
fn builds_trans_cos_by_trans_cos() {
    let Some(fx) = common::fixtures() else { return };
    let old = common::signer(&fx, common::TCOS_DS);
    let cmd = Cs02bCommand::trans_cos_by_trans_cos(TransCosByTransCos {
        counter: 6000,
        originator: TCOS,
        recipient: DEVICE,
        new_cos_ds: cert(&fx.join("zaz1/Z1b-transitionalCoS-ds.pem")),
        certification_path: vec![cert(&fx.join("zaz1/Z1-issuing-ca.pem"))],
        apply_time_based_cpv_checks: false,
        new_floor_seq_number: None,
        execution: None,
    })
    .unwrap();
    check(
        &fx,
        &cmd,
        &old,
        "NA_CS02bTransCoSByTransCoS",
        "CS02bTransCoSByTransCoS_NA_SUCCESS_COMMAND_GBCS.HEX",
    );
}

fn fresh_ka() -> SoftwareKeyAgreement {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    SoftwareKeyAgreement::from_bytes(pk8.as_ref()).unwrap()
}

fn fresh_signer() -> ecos_smki::SoftwareSigner {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    ecos_smki::SoftwareSigner::from_bytes(pk8.as_ref()).unwrap()
}

/// Runs anywhere: own keys, a placeholder certificate body; the device side
/// verifies the MAC with its own KA key and the ACB public key.
#[test]
fn device_side_verifies_with_own_keys() {
    let acb = fresh_ka();
    let device = fresh_ka();
    let signer = fresh_signer();
    let fake_cert = CertificateDer::new(vec![0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
    let cmd = Cs02bCommand::trans_cos_by_trans_cos(TransCosByTransCos {
        counter: u64::MAX - 1,
        originator: TCOS,
        recipient: DEVICE,
        new_cos_ds: fake_cert.clone(),
        certification_path: vec![fake_cert],
        apply_time_based_cpv_checks: true,
        new_floor_seq_number: Some(1 << 63),
        execution: Some(ExecutionDateTime::At(jiff::civil::datetime(
            2031, 12, 31, 23, 59, 58, 0,
        ))),
    })
    .unwrap();
    let bytes = cmd
        .sign_and_mac(&signer, &acb, device.public_key())
        .unwrap();
    let msg = ecos_gbcs::Message::decode(&bytes).unwrap();
    assert_eq!(msg.command().as_ref(), Some(&cmd));
    msg.frame.verify_signature(signer.public_key()).unwrap();
    mac::verify(&msg.frame, &device, acb.public_key()).unwrap();
    // A different ACB key does not verify; neither does another signer.
    assert!(mac::verify(&msg.frame, &device, fresh_ka().public_key()).is_err());
    assert!(
        msg.frame
            .verify_signature(fresh_signer().public_key())
            .is_err()
    );
}

/// A device simulator's response and alert, signed with the device key, decode.
#[test]
fn device_response_and_alert_round_trip() {
    use ecos_gbcs::alert::ALERT_FD_ACTIONED;
    use ecos_gbcs::cs02b::{RemotePartyRole, RemotePartySeqNumberChange, TrustAnchorCell};
    use ecos_gbcs::{
        Body, Cs02bResponse, DlmsDateTime, ExecutionOutcome, FutureDatedAlert, LengthStyle,
        ReplacementMode, ReplacementOutcome, StatusCode,
    };
    let device = fresh_signer();
    let outcome = ExecutionOutcome {
        seq_number: 7000,
        mode: ReplacementMode::SUPPLIER_BY_TRANS_COS,
        seq_number_changes: vec![RemotePartySeqNumberChange {
            role: RemotePartyRole::SUPPLIER,
            floor: 0,
            specialist_floors: None,
        }],
        replacement_outcomes: vec![ReplacementOutcome {
            cell: TrustAnchorCell::SUPPLIER_DS,
            status: StatusCode::SUCCESS,
            existing_sui: TCOS,
            existing_ski: vec![1; 8],
            replacing_sui: DEVICE,
            replacing_ski: vec![2; 8],
        }],
    };
    let cmd_header = ecos_gbcs::GroupingHeader {
        cra: ecos_gbcs::Cra::Command,
        counter: 7000,
        originator: TCOS,
        recipient: DEVICE,
        date_time: None,
        message_code: 0x0107,
    };
    for style in [LengthStyle::Der, LengthStyle::Device] {
        let resp = Cs02bResponse {
            execution_outcome: Some(outcome.clone()),
        };
        let bytes = resp
            .to_general_signing(&cmd_header, DlmsDateTime::RTDS, style)
            .sign(&device)
            .unwrap();
        let msg = ecos_gbcs::Message::decode(&bytes).unwrap();
        msg.frame.verify_signature(device.public_key()).unwrap();
        assert_eq!(msg.frame.header.originator, DEVICE);
        assert_eq!(msg.body, Body::Response(resp));

        let alert = FutureDatedAlert {
            alert_code: ALERT_FD_ACTIONED,
            execution: ExecutionDateTime::At(jiff::civil::datetime(2030, 1, 2, 0, 0, 0, 0)),
            outcome: outcome.clone(),
        };
        let bytes = alert
            .to_general_signing(DEVICE, TCOS, 2001, style)
            .unwrap()
            .sign(&device)
            .unwrap();
        let msg = ecos_gbcs::Message::decode(&bytes).unwrap();
        msg.frame.verify_signature(device.public_key()).unwrap();
        assert_eq!(msg.body, Body::Alert(alert));
    }
}

#[test]
fn self_check_and_configurable_mac_header() {
    let signer = fresh_signer();
    let acb = fresh_ka();
    let device = fresh_ka();
    let fake_cert = CertificateDer::new(vec![0x30, 0x00]).unwrap();
    let params = |counter| TransCosByTransCos {
        counter,
        originator: TCOS,
        recipient: DEVICE,
        new_cos_ds: fake_cert.clone(),
        certification_path: vec![],
        apply_time_based_cpv_checks: false,
        new_floor_seq_number: None,
        execution: None,
    };
    let cmd = Cs02bCommand::trans_cos_by_trans_cos(params(5)).unwrap();
    let bytes = cmd
        .sign_and_mac(&signer, &acb, device.public_key())
        .unwrap();
    cmd.check_signed(&bytes, signer.public_key()).unwrap();
    let other = Cs02bCommand::trans_cos_by_trans_cos(params(6)).unwrap();
    assert!(other.check_signed(&bytes, signer.public_key()).is_err());
    assert!(
        cmd.check_signed(&bytes, fresh_signer().public_key())
            .is_err()
    );

    let apdu = cmd.sign(&signer).unwrap();
    let mh = ecos_gbcs::MacHeader {
        security_control: 0x31,
        invocation_counter: 7,
    };
    let wrapped = mac::wrap_with(&apdu, &acb, device.public_key(), mh).unwrap();
    let frame = Frame::decode(&wrapped).unwrap();
    assert_eq!(frame.mac_header, Some(mh));
    mac::verify(&frame, &device, acb.public_key()).unwrap();
    assert!(
        mac::wrap(&wrapped, &acb, device.public_key()).is_err(),
        "double wrap"
    );
}

#[test]
fn cached_pairwise_secret_gives_the_same_mac() {
    let signer = fresh_signer();
    let acb = fresh_ka();
    let device = fresh_ka();
    let cmd = Cs02bCommand::trans_cos_by_trans_cos(TransCosByTransCos {
        counter: 9,
        originator: TCOS,
        recipient: DEVICE,
        new_cos_ds: CertificateDer::new(vec![0x30, 0x00]).unwrap(),
        certification_path: vec![],
        apply_time_based_cpv_checks: true,
        new_floor_seq_number: None,
        execution: None,
    })
    .unwrap();
    let apdu = cmd.sign(&signer).unwrap();
    let secret = mac::PairwiseSecret::agree(&acb, device.public_key()).unwrap();
    let a = mac::wrap_with_secret(&apdu, &secret, ecos_gbcs::MacHeader::RTDS).unwrap();
    let b = mac::wrap(&apdu, &acb, device.public_key()).unwrap();
    assert_eq!(a, b);
    let device_side = mac::PairwiseSecret::agree(&device, acb.public_key()).unwrap();
    mac::verify_with_secret(&Frame::decode(&a).unwrap(), &device_side).unwrap();
}
