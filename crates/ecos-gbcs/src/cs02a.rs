//! CS02a "Provide Security Credentials Details" (message code 0x0008): read what trust
//! anchor cells hold (`gbcs-cs02b.md` §9, `ecos-domain.md` §3).
//!
//! The public reference carries no byte-level vector of this use case, so the content
//! below is a reconstruction [P], kept in the style of CS02b:
//!
//! ```text
//! ProvideSecurityCredentialDetailsCommand ::= SEQUENCE OF TrustAnchorCellIdentifier
//! ProvideSecurityCredentialDetailsResponse ::= SEQUENCE OF CellDetails
//! CellDetails ::= SEQUENCE {
//!     cell                 TrustAnchorCellIdentifier,
//!     statusCode           ENUMERATED,                 -- 0 success, 25 trustAnchorNotFound
//!     subjectUniqueID      OCTET STRING (SIZE(8)) OPTIONAL,  -- present on success
//!     subjectKeyIdentifier OCTET STRING OPTIONAL             -- present on success
//! }
//! ```
//!
//! The command travels in a General-Signing frame (CRA 1) signed by the sender, without an
//! ACB MAC ("TCoS may send it without a MAC"); the device answers with CRA 2, echoing the
//! counter and message code, signed with its DS key. What a cell holds is public (the
//! certificates are), so the integrity that matters is the device's signature on the
//! answer.

use ecos_smki::{Eui64, Signer};
use serde::Serialize;

use crate::asn1::{
    ENUMERATED, LengthStyle, Lengths, OCTET_STRING, Reader, SEQUENCE, parse_u32, u64_content,
    write_tlv, write_tlv_style,
};
use crate::cs02b::TrustAnchorCell;
use crate::error::{DecodeError, GbcsError};
use crate::frame::{Cra, DlmsDateTime, GeneralSigning, GroupingHeader};
use crate::response::StatusCode;

/// The CS02a message code.
pub const READ_CELLS_CODE: u16 = 0x0008;

/// A CS02a command: the cells to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadCells {
    /// The cells, in the order the answer will give them.
    pub cells: Vec<TrustAnchorCell>,
}

impl ReadCells {
    /// DER content.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for c in &self.cells {
            write_tlv(&mut v, SEQUENCE, &c.encode_value());
        }
        let mut out = Vec::with_capacity(v.len() + 4);
        write_tlv(&mut out, SEQUENCE, &v);
        out
    }

    /// Decode strict DER content; at least one cell.
    pub fn decode(content: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut outer = Reader::new(content, base, Lengths::Strict);
        let mut r = outer.nested(SEQUENCE, "ProvideSecurityCredentialDetailsCommand")?;
        outer.finish("CS02a command content")?;
        let mut cells = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let inner = r.nested(SEQUENCE, "TrustAnchorCellIdentifier")?;
            cells.push(TrustAnchorCell::decode_value(inner, at)?);
        }
        if cells.is_empty() {
            return Err(DecodeError::BadValue {
                what: "ProvideSecurityCredentialDetailsCommand",
                offset: base,
                detail: "no cell to read".into(),
            });
        }
        Ok(ReadCells { cells })
    }

    /// The unsigned General-Signing APDU of the command.
    pub fn general_signing(
        &self,
        counter: u64,
        originator: Eui64,
        recipient: Eui64,
    ) -> GeneralSigning {
        GeneralSigning {
            header: GroupingHeader {
                cra: Cra::Command,
                counter,
                originator,
                recipient,
                date_time: None,
                message_code: READ_CELLS_CODE,
            },
            content: self.encode(),
        }
    }

    /// The signed command (`DF … 40 r‖s`), no MAC.
    pub fn sign(
        &self,
        counter: u64,
        originator: Eui64,
        recipient: Eui64,
        signer: &dyn Signer,
    ) -> Result<Vec<u8>, GbcsError> {
        self.general_signing(counter, originator, recipient)
            .sign(signer)
    }
}

/// What one cell holds, as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellDetails {
    /// The cell.
    pub cell: TrustAnchorCell,
    /// 0 success; 25 trustAnchorNotFound (the device has no such cell, or it is empty).
    pub status: StatusCode,
    /// The holder's SUI (on success).
    pub sui: Option<Eui64>,
    /// The holder's SKI (on success).
    #[serde(serialize_with = "ser_hex")]
    pub ski: Option<Vec<u8>>,
}

fn ser_hex<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode_upper(b)),
        None => s.serialize_none(),
    }
}

/// A device's answer to a CS02a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadCellsResponse {
    /// One entry per cell asked for.
    pub cells: Vec<CellDetails>,
}

impl ReadCellsResponse {
    /// Encode the content in `style`.
    pub fn encode(&self, style: LengthStyle) -> Vec<u8> {
        let mut v = Vec::new();
        for c in &self.cells {
            let mut e = Vec::new();
            write_tlv_style(&mut e, SEQUENCE, &c.cell.encode_value(), style);
            write_tlv_style(
                &mut e,
                ENUMERATED,
                &u64_content(u64::from(c.status.0)),
                style,
            );
            if let Some(sui) = &c.sui {
                write_tlv_style(&mut e, OCTET_STRING, sui.as_bytes(), style);
            }
            if let Some(ski) = &c.ski {
                write_tlv_style(&mut e, OCTET_STRING, ski, style);
            }
            write_tlv_style(&mut v, SEQUENCE, &e, style);
        }
        let mut out = Vec::with_capacity(v.len() + 4);
        write_tlv_style(&mut out, SEQUENCE, &v, style);
        out
    }

    /// Decode device content; non-minimal lengths are accepted.
    pub fn decode(content: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut outer = Reader::new(content, base, Lengths::Lenient);
        let mut r = outer.nested(SEQUENCE, "ProvideSecurityCredentialDetailsResponse")?;
        outer.finish("CS02a response content")?;
        let mut cells = Vec::new();
        while !r.is_empty() {
            let mut e = r.nested(SEQUENCE, "CellDetails")?;
            let at = e.offset();
            let cell = TrustAnchorCell::decode_value(e.nested(SEQUENCE, "cell")?, at)?;
            let status = StatusCode(parse_u32(
                &e.expect(ENUMERATED, "statusCode")?,
                "statusCode",
            )?);
            let sui = match e.optional(OCTET_STRING, "subjectUniqueID")? {
                Some(t) => Some(Eui64(t.value.try_into().map_err(|_| {
                    DecodeError::BadValue {
                        what: "subjectUniqueID",
                        offset: t.offset,
                        detail: format!("{} bytes, not 8", t.value.len()),
                    }
                })?)),
                None => None,
            };
            let ski = e
                .optional(OCTET_STRING, "subjectKeyIdentifier")?
                .map(|t| t.value.to_vec());
            e.finish("CellDetails")?;
            cells.push(CellDetails {
                cell,
                status,
                sui,
                ski,
            });
        }
        Ok(ReadCellsResponse { cells })
    }

    /// The unsigned response APDU to the command with header `command`: counter and
    /// message code echoed, originator and recipient swapped.
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

    /// The details of `cell`, if the answer has them.
    pub fn cell(&self, cell: TrustAnchorCell) -> Option<&CellDetails> {
        self.cells.iter().find(|c| c.cell == cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, Message};

    #[test]
    fn command_and_response_round_trip_through_message_decode() {
        let cmd = ReadCells {
            cells: vec![
                TrustAnchorCell::TRANS_COS_DS,
                TrustAnchorCell::SUPPLIER_PP_KA,
            ],
        };
        let gs = cmd.general_signing(
            7,
            "90B3D51F30000004".parse().unwrap(),
            "00DB1234567890A0".parse().unwrap(),
        );
        let bytes = gs.encode_mac_only();
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.body, Body::ReadCells(cmd.clone()));
        let resp = ReadCellsResponse {
            cells: vec![
                CellDetails {
                    cell: TrustAnchorCell::TRANS_COS_DS,
                    status: StatusCode::SUCCESS,
                    sui: Some("90B3D51F30000004".parse().unwrap()),
                    ski: Some(vec![0x4F, 0x3F, 0x10, 0x85, 0x56, 0x96, 0xFE, 0xF2]),
                },
                CellDetails {
                    cell: TrustAnchorCell::SUPPLIER_PP_KA,
                    status: StatusCode(25),
                    sui: None,
                    ski: None,
                },
            ],
        };
        for style in [LengthStyle::Der, LengthStyle::Device] {
            let r = resp
                .to_general_signing(&gs.header, DlmsDateTime([0; 12]), style)
                .encode_mac_only();
            let m = Message::decode(&r).unwrap();
            assert_eq!(m.body, Body::ReadCellsResponse(resp.clone()));
            assert_eq!(m.frame.header.counter, 7);
        }
        assert_eq!(
            resp.cell(TrustAnchorCell::TRANS_COS_DS)
                .unwrap()
                .ski
                .as_deref(),
            Some(&[0x4F, 0x3F, 0x10, 0x85, 0x56, 0x96, 0xFE, 0xF2][..])
        );
    }

    #[test]
    fn malformed_content_is_a_typed_error() {
        assert!(matches!(
            ReadCells::decode(&[0x30, 0x00], 0),
            Err(DecodeError::BadValue { .. })
        ));
        assert!(ReadCells::decode(&[0x30, 0x03, 0x30, 0x01], 0).is_err());
        // A SUI of 7 bytes.
        let bad = [
            0x30, 0x17, 0x30, 0x15, 0x30, 0x07, 0x02, 0x01, 0x05, 0x03, 0x02, 0x07, 0x80, 0x0A,
            0x01, 0x00, 0x04, 0x07, 1, 2, 3, 4, 5, 6, 7,
        ];
        let e = ReadCellsResponse::decode(&bad[..], 0).unwrap_err();
        assert!(e.to_string().contains("not 8"), "{e}");
    }
}
