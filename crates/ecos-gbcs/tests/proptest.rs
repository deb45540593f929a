//! Property tests: mutated vectors never panic the decoder; arbitrary
//! contents round-trip through encode and decode.

mod common;

use std::sync::OnceLock;

use ecos_gbcs::cs02b::{
    CellUsage, KeyUsage, RemotePartyRole, RemotePartySeqNumberChange, SpecialistSeqNumber,
    TrustAnchorReplacement,
};
use ecos_gbcs::{
    AuthorisingRemotePartyControl, Body, CertificateDer, Cs02bResponse, ExecutionDateTime,
    ExecutionOutcome, FutureDatedAlert, LengthStyle, Message, ReplacementMode, ReplacementOutcome,
    StatusCode, TrustAnchorCell, UpdateSecurityCredentials,
};
use ecos_smki::Eui64;
use proptest::prelude::*;

/// The RTDS vectors when present (printed skip otherwise) plus messages
/// built here, so the property runs anywhere.
fn corpus() -> &'static Vec<Vec<u8>> {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut out: Vec<Vec<u8>> = common::fixtures()
            .map(|fx| common::vectors(&fx).into_iter().map(|(_, b)| b).collect())
            .unwrap_or_default();
        let content = sample_content();
        let g = ecos_gbcs::GeneralSigning {
            header: ecos_gbcs::GroupingHeader {
                cra: ecos_gbcs::Cra::Command,
                counter: 42,
                originator: Eui64([1; 8]),
                recipient: Eui64([2; 8]),
                date_time: None,
                message_code: 0x0107,
            },
            content: content.encode().unwrap(),
        };
        let mut signed = g.encode_unsigned();
        signed.push(0x40);
        signed.extend([7u8; 64]);
        out.push(signed);
        out.push(g.encode_unsigned());
        out
    })
}

fn sample_content() -> UpdateSecurityCredentials {
    UpdateSecurityCredentials {
        control: AuthorisingRemotePartyControl {
            mode: ReplacementMode::SUPPLIER_BY_TRANS_COS,
            plaintext_symmetric_key: None,
            apply_time_based_cpv_checks: false,
            authorising_cell: Some(TrustAnchorCell::TRANS_COS_DS),
            seq_number: 42,
            new_floor_seq_number: None,
            new_specialist_floor_seq_numbers: None,
            other_seq_number_changes: Some(vec![RemotePartySeqNumberChange {
                role: RemotePartyRole::SUPPLIER,
                floor: 0,
                specialist_floors: Some(vec![SpecialistSeqNumber::prepayment_top_up(0)]),
            }]),
        },
        replacements: vec![TrustAnchorReplacement {
            certificate: CertificateDer::new(vec![0x30, 0x01, 0x00]).unwrap(),
            target: TrustAnchorCell::SUPPLIER_DS,
        }],
        certification_path: vec![],
        execution: Some(ExecutionDateTime::Cancel),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match *m {
        Mutation::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b,
        Mutation::Set(i, b) if !bytes.is_empty() => bytes[i % n] = b,
        Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
        Mutation::Delete(i) if !bytes.is_empty() => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
        _ => {}
    }
}

fn check_decode(bytes: &[u8]) {
    let Ok(msg) = Message::decode(bytes) else {
        return;
    };
    if let Body::Command(_) = &msg.body {
        let f = &msg.frame;
        let again = msg.command().unwrap().encode().unwrap().encode_unsigned();
        assert_eq!(
            &again[..],
            &bytes[f.apdu_range().start..f.content_range().end]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_messages_never_panic(pick in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let c = corpus();
        let mut bytes = c[pick % c.len()].clone();
        for m in &muts {
            apply(&mut bytes, m);
        }
        check_decode(&bytes);
        let _ = UpdateSecurityCredentials::decode(&bytes, 0);
        let _ = Cs02bResponse::decode(&bytes, 0);
        let _ = FutureDatedAlert::decode(&bytes, 0);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_decode(&bytes);
        let _ = UpdateSecurityCredentials::decode(&bytes, 0);
        let _ = Cs02bResponse::decode(&bytes, 0);
    }
}

fn cell() -> impl Strategy<Value = TrustAnchorCell> {
    (0u32..200, any::<u16>(), prop_oneof![Just(0u32), 1u32..5]).prop_map(|(r, ku, cu)| {
        TrustAnchorCell {
            role: RemotePartyRole(r),
            key_usage: KeyUsage(ku),
            cell_usage: CellUsage(cu),
        }
    })
}

fn specialists() -> impl Strategy<Value = Vec<SpecialistSeqNumber>> {
    prop::collection::vec(
        (0u32..3, any::<u64>())
            .prop_map(|(usage, seq_number)| SpecialistSeqNumber { usage, seq_number }),
        0..3,
    )
}

fn changes() -> impl Strategy<Value = Vec<RemotePartySeqNumberChange>> {
    prop::collection::vec(
        (0u32..9, any::<u64>(), prop::option::of(specialists())).prop_map(|(r, floor, s)| {
            RemotePartySeqNumberChange {
                role: RemotePartyRole(r),
                floor,
                specialist_floors: s,
            }
        }),
        0..3,
    )
}

fn cert() -> impl Strategy<Value = CertificateDer> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(|body| {
        let mut der = vec![0x30];
        if body.len() < 128 {
            der.push(body.len() as u8);
        } else if body.len() < 256 {
            der.extend([0x81, body.len() as u8]);
        } else {
            der.extend([0x82, (body.len() >> 8) as u8, body.len() as u8]);
        }
        der.extend(body);
        CertificateDer::new(der).unwrap()
    })
}

fn execution() -> impl Strategy<Value = Option<ExecutionDateTime>> {
    prop_oneof![
        Just(None),
        Just(Some(ExecutionDateTime::Cancel)),
        (0i16..=9999, 1i8..=12, 1i8..=28, 0i8..24, 0i8..60, 0i8..60).prop_map(
            |(y, mo, d, h, mi, s)| Some(ExecutionDateTime::At(jiff::civil::datetime(
                y, mo, d, h, mi, s, 0
            )))
        ),
    ]
}

fn content() -> impl Strategy<Value = UpdateSecurityCredentials> {
    let control = (
        0u32..12,
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        any::<bool>(),
        prop::option::of(cell()),
        any::<u64>(),
        prop::option::of(any::<u64>()),
        prop::option::of(specialists()),
        prop::option::of(changes()),
    )
        .prop_map(
            |(m, k, cpv, c, seq, floor, sp, ch)| AuthorisingRemotePartyControl {
                mode: ReplacementMode(m),
                plaintext_symmetric_key: k,
                apply_time_based_cpv_checks: cpv,
                authorising_cell: c,
                seq_number: seq,
                new_floor_seq_number: floor,
                new_specialist_floor_seq_numbers: sp,
                other_seq_number_changes: ch,
            },
        );
    (
        control,
        prop::collection::vec((cert(), cell()), 0..4),
        prop::collection::vec(cert(), 0..3),
        execution(),
    )
        .prop_map(
            |(control, reps, path, execution)| UpdateSecurityCredentials {
                control,
                replacements: reps
                    .into_iter()
                    .map(|(certificate, target)| TrustAnchorReplacement {
                        certificate,
                        target,
                    })
                    .collect(),
                certification_path: path,
                execution,
            },
        )
}

fn outcome() -> impl Strategy<Value = ExecutionOutcome> {
    let one = (
        cell(),
        0u32..130,
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u8>(), 8),
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u8>(), 0..21),
    )
        .prop_map(|(cell, st, es, eski, rs, rski)| ReplacementOutcome {
            cell,
            status: StatusCode(st),
            existing_sui: Eui64(es),
            existing_ski: eski,
            replacing_sui: Eui64(rs),
            replacing_ski: rski,
        });
    (
        any::<u64>(),
        0u32..12,
        changes(),
        prop::collection::vec(one, 0..5),
    )
        .prop_map(
            |(seq_number, m, seq_number_changes, replacement_outcomes)| ExecutionOutcome {
                seq_number,
                mode: ReplacementMode(m),
                seq_number_changes,
                replacement_outcomes,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn commands_round_trip(c in content()) {
        let der = c.encode().unwrap();
        prop_assert_eq!(UpdateSecurityCredentials::decode(&der, 0).unwrap(), c.clone());
        // Minimal DER: re-encoding the decoded value is byte-identical.
        prop_assert_eq!(UpdateSecurityCredentials::decode(&der, 0).unwrap().encode().unwrap(), der);
    }

    #[test]
    fn responses_and_alerts_round_trip(o in prop::option::of(outcome()), code in any::<u16>(), ex in execution()) {
        for style in [LengthStyle::Der, LengthStyle::Device] {
            let r = Cs02bResponse { execution_outcome: o.clone() };
            prop_assert_eq!(Cs02bResponse::decode(&r.encode(style), 0).unwrap(), r);
            if let (Some(outcome), Some(execution)) = (o.clone(), ex) {
                let a = FutureDatedAlert { alert_code: code, execution, outcome };
                prop_assert_eq!(FutureDatedAlert::decode(&a.encode(style).unwrap(), 0).unwrap(), a);
            }
        }
    }
}
