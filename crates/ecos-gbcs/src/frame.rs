//! The GBCS frame: the ACB MAC header, the General-Signing APDU (`DF`,
//! grouping header, content, signature) and the 12-byte ACB MAC
//! (`gbcs-cs02b.md` §1–§3, §5).
//!
//! ```text
//! [DD 00 00 00 00 00 00 <len> 11 00000000]  DF 09 <CRA> <counter:8> 08 <originator:8> 08 <recipient:8>
//!   <date-time len 0|12> <other-info len> <message code:2> <content len> <content> [40 <r‖s> | 00] [<MAC:12>]
//! ```

use std::ops::Range;

use ecos_smki::{Eui64, P256PublicKey, Signer};
use serde::Serialize;

use crate::asn1::{Lengths, read_length, write_length};
use crate::error::{DecodeError, GbcsError};

/// DLMS tag of the ACB's general-ciphering wrapper.
pub const GENERAL_CIPHERING_TAG: u8 = 0xDD;
/// DLMS tag of the General-Signing APDU.
pub const GENERAL_SIGNING_TAG: u8 = 0xDF;
/// Security control byte of the ACB MAC header: authentication only, suite 1.
pub const SECURITY_CONTROL_AUTH_ONLY: u8 = 0x11;
/// Length of the truncated GMAC tag.
pub const MAC_LEN: usize = 12;
/// Length of the MAC header's fixed part after the ciphered-content length
/// (security control and invocation counter).
const SC_IC_LEN: usize = 5;

/// The CRA flag of the transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Cra {
    /// 1: a command to a device.
    Command,
    /// 2: a device's response.
    Response,
    /// 3: a device alert.
    Alert,
}

impl Cra {
    /// The flag byte.
    pub fn code(self) -> u8 {
        match self {
            Cra::Command => 1,
            Cra::Response => 2,
            Cra::Alert => 3,
        }
    }

    /// From the flag byte.
    pub fn from_code(b: u8) -> Option<Cra> {
        match b {
            1 => Some(Cra::Command),
            2 => Some(Cra::Response),
            3 => Some(Cra::Alert),
            _ => None,
        }
    }
}

/// A 12-byte DLMS date-time as devices put in response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DlmsDateTime(pub [u8; 12]);

impl DlmsDateTime {
    /// What the RTDS devices send: 2015-01-01 00:00:00.00, weekday and
    /// deviation unspecified, status FF.
    pub const RTDS: DlmsDateTime = DlmsDateTime([
        0x07, 0xDF, 0x01, 0x01, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0xFF,
    ]);

    /// Year (0xFFFF = unspecified).
    pub fn year(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }
    /// Month, day of month, hour, minute, second, hundredths.
    pub fn fields(&self) -> [u8; 6] {
        [
            self.0[2], self.0[3], self.0[5], self.0[6], self.0[7], self.0[8],
        ]
    }
}

impl Serialize for DlmsDateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [mo, d, h, mi, sec, hu] = self.fields();
        s.collect_str(&format_args!(
            "{:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{hu:02} ({})",
            self.year(),
            hex::encode_upper(self.0)
        ))
    }
}

/// The General-Signing grouping header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupingHeader {
    /// Command, response or alert.
    pub cra: Cra,
    /// The originator counter (u64, big-endian on the wire).
    pub counter: u64,
    /// Business originator id.
    pub originator: Eui64,
    /// Business target id.
    pub recipient: Eui64,
    /// Present (12 bytes) in device responses; absent in commands and alerts.
    pub date_time: Option<DlmsDateTime>,
    /// The message code carried in other-information (0x0107, 0x00CB, ...).
    #[serde(serialize_with = "ser_code")]
    pub message_code: u16,
}

impl GroupingHeader {
    /// The header of a device's response to the command with this header: counter and
    /// message code echoed, originator and recipient swapped, the response's date-time set.
    pub fn response_to(&self, date_time: DlmsDateTime) -> GroupingHeader {
        GroupingHeader {
            cra: Cra::Response,
            counter: self.counter,
            originator: self.recipient,
            recipient: self.originator,
            date_time: Some(date_time),
            message_code: self.message_code,
        }
    }

    /// The 9-byte transaction id: CRA flag and counter.
    pub fn transaction_id(&self) -> [u8; 9] {
        let mut t = [0u8; 9];
        t[0] = self.cra.code();
        t[1..].copy_from_slice(&self.counter.to_be_bytes());
        t
    }

    /// Append the header from the transaction-id length byte up to and
    /// including the content length field.
    fn encode_into(&self, out: &mut Vec<u8>, content_len: usize) {
        out.push(9);
        out.extend_from_slice(&self.transaction_id());
        out.push(8);
        out.extend_from_slice(self.originator.as_bytes());
        out.push(8);
        out.extend_from_slice(self.recipient.as_bytes());
        match &self.date_time {
            Some(dt) => {
                out.push(12);
                out.extend_from_slice(&dt.0);
            }
            None => out.push(0),
        }
        out.push(2);
        out.extend_from_slice(&self.message_code.to_be_bytes());
        write_length(out, content_len);
    }
}

/// Serialize a 16-bit code as `0x0107`.
pub(crate) fn ser_code<S: serde::Serializer>(v: &u16, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("0x{v:04X}"))
}

/// The ACB's MAC header (general-ciphering with empty addressing fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MacHeader {
    /// Security control byte (0x11 in every vector).
    pub security_control: u8,
    /// Invocation counter (0 in every vector).
    pub invocation_counter: u32,
}

impl MacHeader {
    /// What every RTDS vector carries: security control 0x11, invocation counter 0.
    pub const RTDS: MacHeader = MacHeader {
        security_control: SECURITY_CONTROL_AUTH_ONLY,
        invocation_counter: 0,
    };
}

/// The signature part of the General-Signing APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureField {
    /// No signature-length byte at all: the unsigned pre-command form.
    Absent,
    /// Signature length `00`: MAC-only commands (8.5).
    Empty,
    /// `40` and raw r‖s.
    Present([u8; 64]),
}

impl Serialize for SignatureField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SignatureField::Absent => s.serialize_none(),
            SignatureField::Empty => s.serialize_str(""),
            SignatureField::Present(rs) => s.serialize_str(&hex::encode_upper(rs)),
        }
    }
}

/// A decoded frame, borrowing the message bytes.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    /// The MAC header, if the message is MAC-wrapped.
    pub mac_header: Option<MacHeader>,
    /// The grouping header.
    pub header: GroupingHeader,
    /// The signature part.
    pub signature: SignatureField,
    /// The ACB MAC, if MAC-wrapped.
    pub mac: Option<[u8; MAC_LEN]>,
    apdu: Range<usize>,
    content: Range<usize>,
}

fn take<'a>(
    buf: &'a [u8],
    pos: usize,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    buf.get(pos..pos + n).ok_or(DecodeError::Truncated {
        what,
        offset: pos,
        needed: n,
        available: buf.len().saturating_sub(pos),
    })
}

fn byte(buf: &[u8], pos: usize, what: &'static str) -> Result<u8, DecodeError> {
    Ok(take(buf, pos, 1, what)?[0])
}

fn expect_byte(buf: &[u8], pos: usize, want: u8, what: &'static str) -> Result<(), DecodeError> {
    let found = byte(buf, pos, what)?;
    if found != want {
        return Err(DecodeError::BadValue {
            what,
            offset: pos,
            detail: format!("expected 0x{want:02X}, found 0x{found:02X}"),
        });
    }
    Ok(())
}

impl<'a> Frame<'a> {
    /// Decode a frame: with or without the MAC header, signed, MAC-only or
    /// the unsigned pre-command form. Length fields must be minimal in
    /// commands and may be non-minimal in responses and alerts.
    pub fn decode(bytes: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let first = byte(bytes, 0, "message tag")?;
        let (mac_header, apdu_start, apdu_end, mac) = match first {
            GENERAL_CIPHERING_TAG => {
                for (i, what) in [
                    "MAC header transaction-id",
                    "MAC header originator-system-title",
                    "MAC header recipient-system-title",
                    "MAC header date-time",
                    "MAC header other-information",
                    "MAC header key-info",
                ]
                .into_iter()
                .enumerate()
                {
                    expect_byte(bytes, 1 + i, 0, what)?;
                }
                let (len, ll) = read_length(
                    bytes,
                    7,
                    0,
                    "MAC header ciphered-content length",
                    Lengths::Strict,
                )?;
                let body = 7 + ll;
                let available = bytes.len() - body.min(bytes.len());
                if len > available {
                    return Err(DecodeError::Truncated {
                        what: "MAC ciphered content",
                        offset: body,
                        needed: len,
                        available,
                    });
                }
                if len < available {
                    return Err(DecodeError::TrailingBytes {
                        what: "MAC-wrapped message",
                        offset: body + len,
                        count: available - len,
                    });
                }
                if len < SC_IC_LEN + MAC_LEN + 1 {
                    return Err(DecodeError::BadLength {
                        what: "MAC header ciphered-content length",
                        offset: 7,
                        detail: "too short for security control, invocation counter, APDU and MAC",
                    });
                }
                let sc = bytes[body];
                let ic = u32::from_be_bytes([
                    bytes[body + 1],
                    bytes[body + 2],
                    bytes[body + 3],
                    bytes[body + 4],
                ]);
                let end = bytes.len() - MAC_LEN;
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&bytes[end..]);
                (
                    Some(MacHeader {
                        security_control: sc,
                        invocation_counter: ic,
                    }),
                    body + SC_IC_LEN,
                    end,
                    Some(mac),
                )
            }
            GENERAL_SIGNING_TAG => (None, 0, bytes.len(), None),
            found => {
                return Err(DecodeError::UnexpectedTag {
                    what: "message tag (DD general-ciphering or DF general-signing)",
                    offset: 0,
                    expected: GENERAL_SIGNING_TAG,
                    found,
                });
            }
        };
        let buf = &bytes[..apdu_end];
        let mut p = apdu_start;
        let tag = byte(buf, p, "general-signing tag")?;
        if tag != GENERAL_SIGNING_TAG {
            return Err(DecodeError::UnexpectedTag {
                what: "general-signing tag",
                offset: p,
                expected: GENERAL_SIGNING_TAG,
                found: tag,
            });
        }
        p += 1;
        expect_byte(buf, p, 9, "transaction-id length")?;
        let cra_byte = byte(buf, p + 1, "CRA flag")?;
        let cra = Cra::from_code(cra_byte).ok_or_else(|| DecodeError::BadValue {
            what: "CRA flag",
            offset: p + 1,
            detail: format!("{cra_byte} is not 1 (command), 2 (response) or 3 (alert)"),
        })?;
        let counter = u64::from_be_bytes(
            take(buf, p + 2, 8, "originator counter")?
                .try_into()
                .unwrap_or([0; 8]),
        );
        p += 10;
        let eui = |p: &mut usize, what_len, what| -> Result<Eui64, DecodeError> {
            expect_byte(buf, *p, 8, what_len)?;
            let e = Eui64::from_slice(take(buf, *p + 1, 8, what)?).unwrap_or(Eui64([0; 8]));
            *p += 9;
            Ok(e)
        };
        let originator = eui(
            &mut p,
            "originator-system-title length",
            "originator EUI-64",
        )?;
        let recipient = eui(&mut p, "recipient-system-title length", "recipient EUI-64")?;
        let dt_len = byte(buf, p, "date-time length")?;
        let date_time = match dt_len {
            0 => None,
            12 => {
                let mut d = [0u8; 12];
                d.copy_from_slice(take(buf, p + 1, 12, "date-time")?);
                Some(DlmsDateTime(d))
            }
            n => {
                return Err(DecodeError::BadValue {
                    what: "date-time length",
                    offset: p,
                    detail: format!("{n}; must be 0 or 12"),
                });
            }
        };
        p += 1 + dt_len as usize;
        expect_byte(buf, p, 2, "other-information length")?;
        let code = take(buf, p + 1, 2, "message code")?;
        let message_code = u16::from_be_bytes([code[0], code[1]]);
        p += 3;
        let mode = if cra == Cra::Command {
            Lengths::Strict
        } else {
            Lengths::Lenient
        };
        let (clen, ll) = read_length(buf, p, 0, "content length", mode)?;
        p += ll;
        take(buf, p, clen, "content")?;
        let content = p..p + clen;
        p += clen;
        let signature = if p == buf.len() {
            SignatureField::Absent
        } else {
            match buf[p] {
                0 => {
                    p += 1;
                    SignatureField::Empty
                }
                0x40 => {
                    let mut rs = [0u8; 64];
                    rs.copy_from_slice(take(buf, p + 1, 64, "signature r||s")?);
                    p += 65;
                    SignatureField::Present(rs)
                }
                n => {
                    return Err(DecodeError::BadValue {
                        what: "signature length",
                        offset: p,
                        detail: format!("0x{n:02X}; must be 0x40 (r||s) or 0x00 (MAC only)"),
                    });
                }
            }
        };
        if p != buf.len() {
            return Err(DecodeError::TrailingBytes {
                what: "general-signing APDU",
                offset: p,
                count: buf.len() - p,
            });
        }
        Ok(Frame {
            bytes,
            mac_header,
            header: GroupingHeader {
                cra,
                counter,
                originator,
                recipient,
                date_time,
                message_code,
            },
            signature,
            mac,
            apdu: apdu_start..p,
            content,
        })
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The content (CS02b DER) bytes.
    pub fn content(&self) -> &'a [u8] {
        &self.bytes[self.content.clone()]
    }

    /// Offset range of the content in the message.
    pub fn content_range(&self) -> Range<usize> {
        self.content.clone()
    }

    /// The signed range: from the byte after `DF` to the last content byte.
    pub fn signed_range(&self) -> Range<usize> {
        self.apdu.start + 1..self.content.end
    }

    /// The signed bytes.
    pub fn signed_bytes(&self) -> &'a [u8] {
        &self.bytes[self.signed_range()]
    }

    /// The General-Signing APDU, `DF` through the last signature byte (the
    /// MAC's authenticated data after its 6-byte prefix).
    pub fn apdu(&self) -> &'a [u8] {
        &self.bytes[self.apdu.clone()]
    }

    /// Offset range of the General-Signing APDU.
    pub fn apdu_range(&self) -> Range<usize> {
        self.apdu.clone()
    }

    /// The message up to the last content byte (what re-encoding must
    /// reproduce; the signature and MAC are randomised).
    pub fn up_to_signature(&self) -> &'a [u8] {
        &self.bytes[..self.content.end]
    }

    /// Verify the ECDSA signature over exactly the signed range.
    pub fn verify_signature(&self, key: &P256PublicKey) -> Result<(), GbcsError> {
        let rs = match &self.signature {
            SignatureField::Present(rs) => rs,
            SignatureField::Absent => return Err(GbcsError::Unsigned("absent")),
            SignatureField::Empty => return Err(GbcsError::Unsigned("0")),
        };
        let r = self.signed_range();
        key.verify(self.signed_bytes(), rs)
            .map_err(|source| GbcsError::BadSignature {
                start: r.start,
                end: r.end,
                source,
            })
    }
}

/// An unsigned General-Signing APDU: the grouping header and the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneralSigning {
    /// The grouping header.
    pub header: GroupingHeader,
    /// The content (DER).
    pub content: Vec<u8>,
}

impl GeneralSigning {
    /// The signed bytes: from the transaction-id length to the end of the content.
    pub fn to_be_signed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 40);
        self.header.encode_into(&mut out, self.content.len());
        out.extend_from_slice(&self.content);
        out
    }

    /// The unsigned pre-command form: `DF` and the signed bytes, no
    /// signature-length byte.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 120);
        out.push(GENERAL_SIGNING_TAG);
        self.header.encode_into(&mut out, self.content.len());
        out.extend_from_slice(&self.content);
        out
    }

    /// The MAC-only form: signature length `00`.
    pub fn encode_mac_only(&self) -> Vec<u8> {
        let mut out = self.encode_unsigned();
        out.push(0);
        out
    }

    /// Sign the signed range and return the APDU `DF … 40 r‖s`.
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>, GbcsError> {
        let mut out = self.encode_unsigned();
        let rs = signer.sign(&out[1..]).map_err(GbcsError::Key)?;
        out.push(0x40);
        out.extend_from_slice(&rs);
        Ok(out)
    }
}

/// The RTDS MAC header for an APDU of `apdu_len` bytes.
pub fn mac_header(apdu_len: usize) -> Vec<u8> {
    mac_header_with(apdu_len, MacHeader::RTDS)
}

/// A MAC header with the given security control and invocation counter.
pub fn mac_header_with(apdu_len: usize, mh: MacHeader) -> Vec<u8> {
    let mut out = vec![GENERAL_CIPHERING_TAG, 0, 0, 0, 0, 0, 0];
    write_length(&mut out, SC_IC_LEN + apdu_len + MAC_LEN);
    out.push(mh.security_control);
    out.extend_from_slice(&mh.invocation_counter.to_be_bytes());
    out
}
