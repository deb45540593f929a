//! Device responses to a CS02b command (`gbcs-cs02b.md` §7): decoded into
//! typed per-cell outcomes, tolerant of the non-minimal DER lengths devices
//! send; and encoded (for device simulators) in DER or the device style.

use ecos_smki::Eui64;
use serde::Serialize;

use crate::asn1::{
    ENUMERATED, INTEGER, LengthStyle, Lengths, NULL, OCTET_STRING, Reader, SEQUENCE, parse_u32,
    parse_u64, u64_content, write_tlv, write_tlv_style,
};
use crate::cs02b::{
    RemotePartySeqNumberChange, ReplacementMode, TrustAnchorCell, decode_changes, encode_changes,
};
use crate::error::DecodeError;
use crate::frame::{DlmsDateTime, GeneralSigning, GroupingHeader};

/// A per-cell `statusCode` (ENUMERATED; numbering follows RFC 5934).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode(pub u32);

impl StatusCode {
    /// 0: success.
    pub const SUCCESS: StatusCode = StatusCode(0);
    /// 5: badCertificate.
    pub const BAD_CERTIFICATE: StatusCode = StatusCode(5);
    /// 10: noTrustAnchor (the certificate does not chain to a known CA).
    pub const NO_TRUST_ANCHOR: StatusCode = StatusCode(10);

    /// The name, if known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "success",
            5 => "badCertificate",
            10 => "noTrustAnchor",
            17 => "insufficientMemory",
            25 => "trustAnchorNotFound",
            30 => "resourcesBusy",
            127 => "other",
            _ => return None,
        })
    }
}

impl Serialize for StatusCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(n) => s.collect_str(&format_args!("{n} ({})", self.0)),
            None => s.collect_str(&format_args!("status {}", self.0)),
        }
    }
}

/// The outcome for one trust anchor cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplacementOutcome {
    /// The affected cell.
    pub cell: TrustAnchorCell,
    /// Its status.
    pub status: StatusCode,
    /// The SUI (EUI-64) of the certificate that was in the cell.
    pub existing_sui: Eui64,
    /// Its subject key identifier.
    #[serde(serialize_with = "ser_hex")]
    pub existing_ski: Vec<u8>,
    /// The SUI now in the cell (= existing on failure).
    pub replacing_sui: Eui64,
    /// The SKI now in the cell (= existing on failure).
    #[serde(serialize_with = "ser_hex")]
    pub replacing_ski: Vec<u8>,
}

fn read_sui(r: &mut Reader<'_>, what: &'static str) -> Result<Eui64, DecodeError> {
    let t = r.expect(OCTET_STRING, what)?;
    Eui64::from_slice(t.value).ok_or_else(|| DecodeError::BadValue {
        what,
        offset: t.offset,
        detail: format!("{} bytes; an EUI-64 is 8", t.value.len()),
    })
}

fn ser_hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(v))
}

impl ReplacementOutcome {
    /// Status success and the cell now holds a different certificate.
    pub fn replaced(&self) -> bool {
        self.status == StatusCode::SUCCESS
            && (self.existing_ski != self.replacing_ski || self.existing_sui != self.replacing_sui)
    }

    fn encode_value(&self, style: LengthStyle) -> Vec<u8> {
        let mut v = Vec::with_capacity(56);
        write_tlv_style(&mut v, SEQUENCE, &self.cell.encode_value(), style);
        write_tlv(&mut v, ENUMERATED, &u64_content(self.status.0 as u64));
        write_tlv(&mut v, OCTET_STRING, self.existing_sui.as_bytes());
        write_tlv(&mut v, OCTET_STRING, &self.existing_ski);
        write_tlv(&mut v, OCTET_STRING, self.replacing_sui.as_bytes());
        write_tlv(&mut v, OCTET_STRING, &self.replacing_ski);
        v
    }

    fn decode_value(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let cell = r.expect(SEQUENCE, "affected trust anchor cell")?;
        let cell = TrustAnchorCell::decode_value(
            Reader::new(cell.value, cell.value_offset, r.mode()),
            cell.offset,
        )?;
        let status = StatusCode(parse_u32(
            &r.expect(ENUMERATED, "statusCode")?,
            "statusCode",
        )?);
        let existing_sui = read_sui(&mut r, "existing SUI")?;
        let existing_ski = r.expect(OCTET_STRING, "existing SKI")?.value.to_vec();
        let replacing_sui = read_sui(&mut r, "replacing SUI")?;
        let replacing_ski = r.expect(OCTET_STRING, "replacing SKI")?.value.to_vec();
        r.finish("ReplacementOutcome")?;
        Ok(ReplacementOutcome {
            cell,
            status,
            existing_sui,
            existing_ski,
            replacing_sui,
            replacing_ski,
        })
    }
}

/// The execution outcome, in a response (immediate commands) or a 0x00CB alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionOutcome {
    /// The command's authorising sequence number.
    pub seq_number: u64,
    /// The command's replacement mode.
    pub mode: ReplacementMode,
    /// The sequence-number changes applied (may be empty).
    pub seq_number_changes: Vec<RemotePartySeqNumberChange>,
    /// One outcome per replaced cell.
    pub replacement_outcomes: Vec<ReplacementOutcome>,
}

impl ExecutionOutcome {
    /// True if every cell reports success.
    pub fn all_succeeded(&self) -> bool {
        self.replacement_outcomes
            .iter()
            .all(|o| o.status == StatusCode::SUCCESS)
    }

    pub(crate) fn encode_value(&self, style: LengthStyle) -> Vec<u8> {
        let mut v = Vec::with_capacity(200);
        write_tlv(&mut v, INTEGER, &u64_content(self.seq_number));
        write_tlv(&mut v, INTEGER, &u64_content(self.mode.0 as u64));
        write_tlv_style(
            &mut v,
            SEQUENCE,
            &encode_changes(&self.seq_number_changes, style),
            style,
        );
        let mut outs = Vec::with_capacity(180);
        for o in &self.replacement_outcomes {
            write_tlv_style(&mut outs, SEQUENCE, &o.encode_value(style), style);
        }
        write_tlv_style(&mut v, SEQUENCE, &outs, style);
        v
    }

    pub(crate) fn decode_value(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let seq_number = parse_u64(
            &r.expect(INTEGER, "authorisingRemotePartySeqNumber")?,
            "authorisingRemotePartySeqNumber",
        )?;
        let mode = ReplacementMode(parse_u32(
            &r.expect(INTEGER, "credentialsReplacementMode")?,
            "credentialsReplacementMode",
        )?);
        let seq_number_changes =
            decode_changes(r.nested(SEQUENCE, "remotePartySeqNumberChanges")?)?;
        let mut outs = r.nested(SEQUENCE, "replacementOutcomes")?;
        let mut replacement_outcomes = Vec::new();
        while !outs.is_empty() {
            replacement_outcomes.push(ReplacementOutcome::decode_value(
                outs.nested(SEQUENCE, "ReplacementOutcome")?,
            )?);
        }
        r.finish("executionOutcome")?;
        Ok(ExecutionOutcome {
            seq_number,
            mode,
            seq_number_changes,
            replacement_outcomes,
        })
    }
}

/// A device's response to a CS02b command: `commandAccepted` and, for
/// immediate commands, the execution outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cs02bResponse {
    /// `None` for future-dated and cancellation commands (accepted only).
    pub execution_outcome: Option<ExecutionOutcome>,
}

impl Cs02bResponse {
    /// Decode device content; non-minimal lengths are accepted.
    pub fn decode(content: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut outer = Reader::new(content, base, Lengths::Lenient);
        let mut r = outer.nested(SEQUENCE, "UpdateSecurityCredentialsResponse")?;
        outer.finish("CS02b response content")?;
        let null = r.expect(NULL, "commandAccepted")?;
        if !null.value.is_empty() {
            return Err(DecodeError::BadValue {
                what: "commandAccepted",
                offset: null.offset,
                detail: "NULL with a non-empty value".into(),
            });
        }
        let execution_outcome = match r.optional(SEQUENCE, "executionOutcome")? {
            Some(t) => Some(ExecutionOutcome::decode_value(Reader::new(
                t.value,
                t.value_offset,
                Lengths::Lenient,
            ))?),
            None => None,
        };
        r.finish("UpdateSecurityCredentialsResponse")?;
        Ok(Cs02bResponse { execution_outcome })
    }

    /// Encode the content in `style`.
    pub fn encode(&self, style: LengthStyle) -> Vec<u8> {
        let mut v = vec![NULL, 0];
        if let Some(o) = &self.execution_outcome {
            write_tlv_style(&mut v, SEQUENCE, &o.encode_value(style), style);
        }
        let mut out = Vec::with_capacity(v.len() + 4);
        write_tlv_style(&mut out, SEQUENCE, &v, style);
        out
    }

    /// The unsigned response APDU to the command with header `command`: the
    /// counter and message code are echoed, originator and recipient swap.
    pub fn to_general_signing(
        &self,
        command: &GroupingHeader,
        date_time: DlmsDateTime,
        style: LengthStyle,
    ) -> GeneralSigning {
        GeneralSigning {
            header: command.response_to(date_time),
            content: self.encode(style),
        }
    }
}
