//! The 0x00CB future-dated Update Security Credentials alert
//! (`gbcs-cs02b.md` §8): the outcome of a future-dated command, raised by the
//! device when it executes it.

use serde::Serialize;

use crate::asn1::{
    GENERALIZED_TIME, INTEGER, LengthStyle, Lengths, Reader, SEQUENCE, parse_u64, u64_content,
    write_tlv, write_tlv_style,
};
use crate::cs02b::ExecutionDateTime;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{Cra, GeneralSigning, GroupingHeader};
use crate::response::ExecutionOutcome;

/// The message code of the future-dated outcome alert.
pub const FUTURE_DATED_ALERT_CODE: u16 = 0x00CB;
/// Alert code: the future-dated command was actioned.
pub const ALERT_FD_ACTIONED: u16 = 0x8F66;
/// Alert code: the future-dated command failed.
pub const ALERT_FD_FAILED: u16 = 0x8F67;

/// The 0x00CB alert content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FutureDatedAlert {
    /// 0x8F66 (actioned) or 0x8F67 (failed).
    #[serde(serialize_with = "crate::frame::ser_code")]
    pub alert_code: u16,
    /// The future-dated command's execution date-time.
    pub execution: ExecutionDateTime,
    /// What the device did.
    pub outcome: ExecutionOutcome,
}

impl FutureDatedAlert {
    /// True for 0x8F66.
    pub fn actioned(&self) -> bool {
        self.alert_code == ALERT_FD_ACTIONED
    }

    /// Decode device content; non-minimal lengths are accepted.
    pub fn decode(content: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut outer = Reader::new(content, base, Lengths::Lenient);
        let mut r = outer.nested(SEQUENCE, "future-dated alert")?;
        outer.finish("0x00CB alert content")?;
        let t = r.expect(INTEGER, "alertCode")?;
        let code = parse_u64(&t, "alertCode")?;
        let alert_code = u16::try_from(code).map_err(|_| DecodeError::BadValue {
            what: "alertCode",
            offset: t.offset,
            detail: format!("{code} does not fit 16 bits"),
        })?;
        let execution = ExecutionDateTime::decode(
            &r.expect(GENERALIZED_TIME, "executionDateTime")?,
            "executionDateTime",
        )?;
        let outcome = ExecutionOutcome::decode_value(r.nested(SEQUENCE, "executionOutcome")?)?;
        r.finish("future-dated alert")?;
        Ok(FutureDatedAlert {
            alert_code,
            execution,
            outcome,
        })
    }

    /// Encode the content in `style`.
    pub fn encode(&self, style: LengthStyle) -> Result<Vec<u8>, EncodeError> {
        let mut v = Vec::with_capacity(240);
        write_tlv(&mut v, INTEGER, &u64_content(self.alert_code as u64));
        write_tlv(
            &mut v,
            GENERALIZED_TIME,
            &self.execution.to_generalized_time()?,
        );
        write_tlv_style(&mut v, SEQUENCE, &self.outcome.encode_value(style), style);
        let mut out = Vec::with_capacity(v.len() + 4);
        write_tlv_style(&mut out, SEQUENCE, &v, style);
        Ok(out)
    }

    /// The unsigned alert APDU from `device` to `remote_party`, with the
    /// device's own alert counter.
    pub fn to_general_signing(
        &self,
        device: ecos_smki::Eui64,
        remote_party: ecos_smki::Eui64,
        alert_counter: u64,
        style: LengthStyle,
    ) -> Result<GeneralSigning, EncodeError> {
        Ok(GeneralSigning {
            header: GroupingHeader {
                cra: Cra::Alert,
                counter: alert_counter,
                originator: device,
                recipient: remote_party,
                date_time: None,
                message_code: FUTURE_DATED_ALERT_CODE,
            },
            content: self.encode(style)?,
        })
    }
}
