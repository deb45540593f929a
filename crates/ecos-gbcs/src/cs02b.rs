//! CS02b Update Security Credentials content (`gbcs-cs02b.md` §4): the
//! types, strict DER encode and decode, and the command builders for mode 7
//! (supplierByTransCoS, 0x0107) and mode 6 (transCoSByTransCoS, 0x0106).

use std::fmt;

use ecos_smki::{Eui64, KeyAgreement, P256PublicKey, Role, Signer};
use jiff::civil::DateTime;
use serde::Serialize;

use crate::asn1::{
    BIT_STRING, GENERALIZED_TIME, INTEGER, LengthStyle, Lengths, Reader, SEQUENCE, Tlv, parse_u32,
    parse_u64, u64_content, write_tlv, write_tlv_style,
};
use crate::error::{DecodeError, EncodeError, GbcsError};
use crate::frame::{Cra, GeneralSigning, GroupingHeader};

const TAG_PLAINTEXT_KEY: u8 = 0x80;
const TAG_APPLY_CPV: u8 = 0x81;
const TAG_AUTH_CELL: u8 = 0xA2;
const TAG_SEQ_NUMBER: u8 = 0x83;
const TAG_FLOOR: u8 = 0x84;
const TAG_SPECIALIST_FLOORS: u8 = 0xA5;
const TAG_OTHER_CHANGES: u8 = 0xA6;

/// `credentialsReplacementMode` (INTEGER). Kept as a number so that every
/// mode decodes and re-encodes; the known ones have names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplacementMode(pub u32);

impl ReplacementMode {
    /// 2: supplierBySupplier (6.15.1, 6.21).
    pub const SUPPLIER_BY_SUPPLIER: ReplacementMode = ReplacementMode(2);
    /// 4: accessControlBrokerByACB (8.5, MAC only).
    pub const ACB_BY_ACB: ReplacementMode = ReplacementMode(4);
    /// 6: transCoSByTransCoS (the CoS credential migration).
    pub const TRANS_COS_BY_TRANS_COS: ReplacementMode = ReplacementMode(6);
    /// 7: supplierByTransCoS (SR 6.23).
    pub const SUPPLIER_BY_TRANS_COS: ReplacementMode = ReplacementMode(7);

    /// The ASN.1 name, if known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "rootBySupplier",
            1 => "rootByWanProvider",
            2 => "supplierBySupplier",
            3 => "networkOperatorByNetworkOperator",
            4 => "accessControlBrokerByACB",
            5 => "wanProviderByWanProvider",
            6 => "transCoSByTransCoS",
            7 => "supplierByTransCoS",
            8 => "anyExceptAbnormalRootByRecovery",
            9 => "anyByContingency",
            _ => return None,
        })
    }

    /// The CS02b message code a command in this mode carries (§9). An
    /// explicit table, not arithmetic; `None` for modes without a known code.
    pub fn message_code(self) -> Option<u16> {
        Some(match self.0 {
            0 => 0x0100,
            1 => 0x0101,
            2 => 0x0102,
            3 => 0x0103,
            4 => 0x0104,
            5 => 0x0105,
            6 => 0x0106,
            7 => 0x0107,
            8 => 0x0108,
            9 => 0x0109,
            _ => return None,
        })
    }

    /// The mode a CS02b message code belongs to.
    pub fn from_message_code(code: u16) -> Option<ReplacementMode> {
        (0..=9)
            .map(ReplacementMode)
            .find(|m| m.message_code() == Some(code))
    }
}

impl fmt::Display for ReplacementMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "mode {}", self.0),
        }
    }
}

impl Serialize for ReplacementMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `RemotePartyRole` (INTEGER): 0 root … 5 transitionalCoS … 127 other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePartyRole(pub u32);

impl RemotePartyRole {
    /// 2: supplier.
    pub const SUPPLIER: RemotePartyRole = RemotePartyRole(2);
    /// 4: access control broker.
    pub const ACCESS_CONTROL_BROKER: RemotePartyRole = RemotePartyRole(4);
    /// 5: transitional CoS (the cell the CoS/ECoS key lives in).
    pub const TRANSITIONAL_COS: RemotePartyRole = RemotePartyRole(5);

    /// The SMKI role with this code, if any.
    pub fn role(self) -> Option<Role> {
        u8::try_from(self.0).ok().and_then(Role::from_code)
    }
}

impl From<Role> for RemotePartyRole {
    fn from(r: Role) -> Self {
        RemotePartyRole(r.code() as u32)
    }
}

impl Serialize for RemotePartyRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.role() {
            Some(r) => s.collect_str(&r),
            None => s.collect_str(&format_args!("role {}", self.0)),
        }
    }
}

/// A KeyUsage named BIT STRING; bit `n` (ASN.1 numbering) is `1 << n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyUsage(pub u16);

impl KeyUsage {
    /// digitalSignature (bit 0): `03 02 07 80`.
    pub const DIGITAL_SIGNATURE: KeyUsage = KeyUsage(1 << 0);
    /// keyAgreement (bit 4): `03 02 03 08`.
    pub const KEY_AGREEMENT: KeyUsage = KeyUsage(1 << 4);
    /// keyCertSign (bit 5): `03 02 02 04`.
    pub const KEY_CERT_SIGN: KeyUsage = KeyUsage(1 << 5);

    /// DER content octets: unused-bits count and the trimmed bits.
    fn content(self) -> Vec<u8> {
        if self.0 == 0 {
            return vec![0];
        }
        let highest = 15 - self.0.leading_zeros() as usize;
        let nbytes = highest / 8 + 1;
        let mut out = vec![0u8; nbytes + 1];
        out[0] = (7 - highest % 8) as u8;
        for bit in 0..=highest {
            if self.0 & (1 << bit) != 0 {
                out[1 + bit / 8] |= 0x80 >> (bit % 8);
            }
        }
        out
    }

    fn decode(t: &Tlv<'_>) -> Result<KeyUsage, DecodeError> {
        let bad = |detail: &str| DecodeError::BadValue {
            what: "keyUsage",
            offset: t.offset,
            detail: detail.to_string(),
        };
        let (&unused, bits) = t
            .value
            .split_first()
            .ok_or_else(|| bad("empty BIT STRING"))?;
        if bits.len() > 2 {
            return Err(bad("more than 16 bits"));
        }
        if unused > 7 || (bits.is_empty() && unused != 0) {
            return Err(bad("invalid unused-bits count"));
        }
        let mut v = 0u16;
        for (i, b) in bits.iter().enumerate() {
            for j in 0..8 {
                if b & (0x80 >> j) != 0 {
                    v |= 1 << (i * 8 + j);
                }
            }
        }
        let ku = KeyUsage(v);
        if ku.content() != t.value {
            return Err(bad(
                "not DER: a named BIT STRING must have its trailing zero bits trimmed",
            ));
        }
        Ok(ku)
    }
}

impl Serialize for KeyUsage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names = [
            (0, "digitalSignature"),
            (4, "keyAgreement"),
            (5, "keyCertSign"),
        ];
        let mut parts: Vec<String> = Vec::new();
        for bit in 0..16 {
            if self.0 & (1 << bit) != 0 {
                match names.iter().find(|(b, _)| *b == bit) {
                    Some((_, n)) => parts.push((*n).to_string()),
                    None => parts.push(format!("bit{bit}")),
                }
            }
        }
        s.collect_str(&parts.join("|"))
    }
}

/// `cellUsage` of a trust anchor cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellUsage(pub u32);

impl CellUsage {
    /// 0: management (the DEFAULT, never encoded).
    pub const MANAGEMENT: CellUsage = CellUsage(0);
    /// 1: prepaymentTopUp.
    pub const PREPAYMENT_TOP_UP: CellUsage = CellUsage(1);
}

impl Serialize for CellUsage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => s.serialize_str("management"),
            1 => s.serialize_str("prepaymentTopUp"),
            n => s.collect_str(&format_args!("cellUsage {n}")),
        }
    }
}

/// `TrustAnchorCellIdentifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TrustAnchorCell {
    /// The remote party role of the cell.
    pub role: RemotePartyRole,
    /// The key usage of the cell.
    pub key_usage: KeyUsage,
    /// Management or prepayment top-up.
    pub cell_usage: CellUsage,
}

impl TrustAnchorCell {
    /// {transitionalCoS, digitalSignature}: the cell the CoS key lives in.
    pub const TRANS_COS_DS: TrustAnchorCell = TrustAnchorCell::new(
        RemotePartyRole::TRANSITIONAL_COS,
        KeyUsage::DIGITAL_SIGNATURE,
    );
    /// {supplier, digitalSignature}.
    pub const SUPPLIER_DS: TrustAnchorCell =
        TrustAnchorCell::new(RemotePartyRole::SUPPLIER, KeyUsage::DIGITAL_SIGNATURE);
    /// {supplier, keyAgreement}.
    pub const SUPPLIER_KA: TrustAnchorCell =
        TrustAnchorCell::new(RemotePartyRole::SUPPLIER, KeyUsage::KEY_AGREEMENT);
    /// {supplier, keyAgreement, prepaymentTopUp}.
    pub const SUPPLIER_PP_KA: TrustAnchorCell = TrustAnchorCell {
        role: RemotePartyRole::SUPPLIER,
        key_usage: KeyUsage::KEY_AGREEMENT,
        cell_usage: CellUsage::PREPAYMENT_TOP_UP,
    };

    /// A management cell.
    pub const fn new(role: RemotePartyRole, key_usage: KeyUsage) -> Self {
        TrustAnchorCell {
            role,
            key_usage,
            cell_usage: CellUsage::MANAGEMENT,
        }
    }

    pub(crate) fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12);
        write_tlv(&mut v, INTEGER, &u64_content(self.role.0 as u64));
        write_tlv(&mut v, BIT_STRING, &self.key_usage.content());
        if self.cell_usage != CellUsage::MANAGEMENT {
            write_tlv(&mut v, INTEGER, &u64_content(self.cell_usage.0 as u64));
        }
        v
    }

    pub(crate) fn decode_value(mut r: Reader<'_>, at: usize) -> Result<Self, DecodeError> {
        let role = parse_u32(&r.expect(INTEGER, "remotePartyRole")?, "remotePartyRole")?;
        let key_usage = KeyUsage::decode(&r.expect(BIT_STRING, "keyUsage")?)?;
        let cell_usage = match r.optional(INTEGER, "cellUsage")? {
            Some(t) => {
                let v = parse_u32(&t, "cellUsage")?;
                if v == 0 && r.mode() == Lengths::Strict {
                    return Err(DecodeError::BadValue {
                        what: "cellUsage",
                        offset: t.offset,
                        detail: "DEFAULT value management(0) must be omitted in DER".into(),
                    });
                }
                CellUsage(v)
            }
            None => CellUsage::MANAGEMENT,
        };
        r.finish("TrustAnchorCellIdentifier")?;
        let _ = at;
        Ok(TrustAnchorCell {
            role: RemotePartyRole(role),
            key_usage,
            cell_usage,
        })
    }
}

/// `SpecialistSeqNumber`: {seqNumberUsage (0 = prepaymentTopUp), seqNumber}.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpecialistSeqNumber {
    /// 0: prepaymentTopUp.
    pub usage: u32,
    /// The sequence number.
    pub seq_number: u64,
}

impl SpecialistSeqNumber {
    /// A prepayment top-up sequence number.
    pub fn prepayment_top_up(seq_number: u64) -> Self {
        SpecialistSeqNumber {
            usage: 0,
            seq_number,
        }
    }
}

fn encode_specialists(list: &[SpecialistSeqNumber]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in list {
        let mut e = Vec::new();
        write_tlv(&mut e, INTEGER, &u64_content(s.usage as u64));
        write_tlv(&mut e, INTEGER, &u64_content(s.seq_number));
        write_tlv(&mut v, SEQUENCE, &e);
    }
    v
}

fn decode_specialists(mut r: Reader<'_>) -> Result<Vec<SpecialistSeqNumber>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let mut e = r.nested(SEQUENCE, "SpecialistSeqNumber")?;
        let usage = parse_u32(&e.expect(INTEGER, "seqNumberUsage")?, "seqNumberUsage")?;
        let seq_number = parse_u64(&e.expect(INTEGER, "seqNumber")?, "seqNumber")?;
        e.finish("SpecialistSeqNumber")?;
        out.push(SpecialistSeqNumber { usage, seq_number });
    }
    Ok(out)
}

/// `RemotePartySeqNumberChange`: another role's floor (and specialist floors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemotePartySeqNumberChange {
    /// The role whose floors change.
    pub role: RemotePartyRole,
    /// Its new floor sequence number.
    pub floor: u64,
    /// Its specialist floors (prepayment top-up), if given.
    pub specialist_floors: Option<Vec<SpecialistSeqNumber>>,
}

impl RemotePartySeqNumberChange {
    pub(crate) fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::new();
        write_tlv(&mut v, INTEGER, &u64_content(self.role.0 as u64));
        write_tlv(&mut v, INTEGER, &u64_content(self.floor));
        if let Some(s) = &self.specialist_floors {
            write_tlv(&mut v, SEQUENCE, &encode_specialists(s));
        }
        v
    }

    pub(crate) fn decode_value(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let role = parse_u32(&r.expect(INTEGER, "remotePartyRole")?, "remotePartyRole")?;
        let floor = parse_u64(&r.expect(INTEGER, "floorSeqNumber")?, "floorSeqNumber")?;
        let specialist_floors = match r.optional(SEQUENCE, "specialistFloorSeqNumbers")? {
            Some(t) => Some(decode_specialists(Reader::new(
                t.value,
                t.value_offset,
                r.mode(),
            ))?),
            None => None,
        };
        r.finish("RemotePartySeqNumberChange")?;
        Ok(RemotePartySeqNumberChange {
            role: RemotePartyRole(role),
            floor,
            specialist_floors,
        })
    }
}

pub(crate) fn encode_changes(list: &[RemotePartySeqNumberChange], style: LengthStyle) -> Vec<u8> {
    let mut v = Vec::new();
    for c in list {
        write_tlv_style(&mut v, SEQUENCE, &c.encode_value(), style);
    }
    v
}

pub(crate) fn decode_changes(
    mut r: Reader<'_>,
) -> Result<Vec<RemotePartySeqNumberChange>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        let e = r.nested(SEQUENCE, "RemotePartySeqNumberChange")?;
        out.push(RemotePartySeqNumberChange::decode_value(e)?);
    }
    Ok(out)
}

/// `executionDateTime`: a future date-time, or the cancellation value
/// `99991231235959Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionDateTime {
    /// Execute at this UTC date-time (whole seconds).
    At(DateTime),
    /// Cancel the pending future-dated command (`99991231235959Z`).
    Cancel,
}

const CANCEL_TEXT: &[u8; 15] = b"99991231235959Z";

impl ExecutionDateTime {
    /// The 15 GeneralizedTime bytes `YYYYMMDDHHMMSSZ`.
    pub fn to_generalized_time(&self) -> Result<[u8; 15], EncodeError> {
        match self {
            ExecutionDateTime::Cancel => Ok(*CANCEL_TEXT),
            ExecutionDateTime::At(dt) => {
                if dt.subsec_nanosecond() != 0 {
                    return Err(EncodeError::OutOfRange {
                        what: "executionDateTime",
                        detail: "fractional seconds are not allowed".into(),
                    });
                }
                if dt.year() < 0 {
                    return Err(EncodeError::OutOfRange {
                        what: "executionDateTime",
                        detail: format!("year {} is not a 4-digit year", dt.year()),
                    });
                }
                let s = format!(
                    "{:04}{:02}{:02}{:02}{:02}{:02}Z",
                    dt.year(),
                    dt.month(),
                    dt.day(),
                    dt.hour(),
                    dt.minute(),
                    dt.second()
                );
                if s.as_bytes() == CANCEL_TEXT {
                    return Ok(*CANCEL_TEXT);
                }
                let mut out = [0u8; 15];
                out.copy_from_slice(s.as_bytes());
                Ok(out)
            }
        }
    }

    pub(crate) fn decode(t: &Tlv<'_>, what: &'static str) -> Result<Self, DecodeError> {
        let bad = |detail: String| DecodeError::BadValue {
            what,
            offset: t.offset,
            detail,
        };
        let v = t.value;
        if v == CANCEL_TEXT {
            return Ok(ExecutionDateTime::Cancel);
        }
        if v.len() != 15 || v[14] != b'Z' || !v[..14].iter().all(u8::is_ascii_digit) {
            return Err(bad(format!(
                "GeneralizedTime {:?} is not YYYYMMDDHHMMSSZ",
                String::from_utf8_lossy(v)
            )));
        }
        let n = |a: usize, b: usize| {
            v[a..b]
                .iter()
                .fold(0i32, |acc, &d| acc * 10 + (d - b'0') as i32)
        };
        let dt = DateTime::new(
            n(0, 4) as i16,
            n(4, 6) as i8,
            n(6, 8) as i8,
            n(8, 10) as i8,
            n(10, 12) as i8,
            n(12, 14) as i8,
            0,
        )
        .map_err(|e| bad(format!("invalid date-time: {e}")))?;
        Ok(ExecutionDateTime::At(dt))
    }
}

impl Serialize for ExecutionDateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExecutionDateTime::Cancel => s.serialize_str("cancel (99991231235959Z)"),
            ExecutionDateTime::At(dt) => s.collect_str(&format_args!("{dt}Z")),
        }
    }
}

/// A certificate carried in the content: one DER SEQUENCE, kept as bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertificateDer(Vec<u8>);

impl CertificateDer {
    /// Check that `der` is exactly one definite-length SEQUENCE (the
    /// certificate's own content is not parsed here).
    pub fn new(der: Vec<u8>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&der, 0, Lengths::Strict);
        r.expect(SEQUENCE, "certificate")?;
        r.finish("certificate")?;
        Ok(CertificateDer(der))
    }

    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for CertificateDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateDer({} bytes)", self.0.len())
    }
}

impl Serialize for CertificateDer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(&self.0))
    }
}

/// `TrustAnchorReplacement`: a certificate and the cell it goes into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustAnchorReplacement {
    /// The replacing certificate.
    pub certificate: CertificateDer,
    /// The target cell.
    pub target: TrustAnchorCell,
}

/// `AuthorisingRemotePartyControl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorisingRemotePartyControl {
    /// `credentialsReplacementMode`.
    pub mode: ReplacementMode,
    /// `[0] plaintextSymmetricKey` (anyByContingency only).
    #[serde(serialize_with = "ser_opt_hex")]
    pub plaintext_symmetric_key: Option<Vec<u8>>,
    /// `[1] applyTimeBasedCPVChecks`: `true` = apply (the DEFAULT, not encoded).
    pub apply_time_based_cpv_checks: bool,
    /// `[2]` the authorising trust anchor cell.
    pub authorising_cell: Option<TrustAnchorCell>,
    /// `[3]` the authorising remote party's sequence number (= the header counter).
    pub seq_number: u64,
    /// `[4]` the authoriser's new floor sequence number.
    pub new_floor_seq_number: Option<u64>,
    /// `[5]` the authoriser's new specialist floors.
    pub new_specialist_floor_seq_numbers: Option<Vec<SpecialistSeqNumber>>,
    /// `[6]` other roles' sequence-number changes.
    pub other_seq_number_changes: Option<Vec<RemotePartySeqNumberChange>>,
}

fn ser_opt_hex<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode_upper(b)),
        None => s.serialize_none(),
    }
}

impl AuthorisingRemotePartyControl {
    fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        write_tlv(&mut v, INTEGER, &u64_content(self.mode.0 as u64));
        if let Some(k) = &self.plaintext_symmetric_key {
            write_tlv(&mut v, TAG_PLAINTEXT_KEY, k);
        }
        if !self.apply_time_based_cpv_checks {
            write_tlv(&mut v, TAG_APPLY_CPV, &[1]);
        }
        if let Some(c) = &self.authorising_cell {
            write_tlv(&mut v, TAG_AUTH_CELL, &c.encode_value());
        }
        write_tlv(&mut v, TAG_SEQ_NUMBER, &u64_content(self.seq_number));
        if let Some(f) = self.new_floor_seq_number {
            write_tlv(&mut v, TAG_FLOOR, &u64_content(f));
        }
        if let Some(s) = &self.new_specialist_floor_seq_numbers {
            write_tlv(&mut v, TAG_SPECIALIST_FLOORS, &encode_specialists(s));
        }
        if let Some(c) = &self.other_seq_number_changes {
            write_tlv(
                &mut v,
                TAG_OTHER_CHANGES,
                &encode_changes(c, LengthStyle::Der),
            );
        }
        v
    }

    fn decode_value(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let mode = ReplacementMode(parse_u32(
            &r.expect(INTEGER, "credentialsReplacementMode")?,
            "credentialsReplacementMode",
        )?);
        let plaintext_symmetric_key = r
            .optional(TAG_PLAINTEXT_KEY, "[0] plaintextSymmetricKey")?
            .map(|t| t.value.to_vec());
        let apply_time_based_cpv_checks =
            match r.optional(TAG_APPLY_CPV, "[1] applyTimeBasedCPVChecks")? {
                None => true,
                Some(t) => match parse_u64(&t, "[1] applyTimeBasedCPVChecks")? {
                    1 => false,
                    0 => {
                        return Err(DecodeError::BadValue {
                            what: "[1] applyTimeBasedCPVChecks",
                            offset: t.offset,
                            detail: "DEFAULT value apply(0) must be omitted in DER".into(),
                        });
                    }
                    n => {
                        return Err(DecodeError::BadValue {
                            what: "[1] applyTimeBasedCPVChecks",
                            offset: t.offset,
                            detail: format!("{n} is neither apply(0) nor disapply(1)"),
                        });
                    }
                },
            };
        let authorising_cell =
            match r.optional(TAG_AUTH_CELL, "[2] authorisingRemotePartyTACellIdentifier")? {
                Some(t) => Some(TrustAnchorCell::decode_value(
                    Reader::new(t.value, t.value_offset, r.mode()),
                    t.offset,
                )?),
                None => None,
            };
        let seq_number = parse_u64(
            &r.expect(TAG_SEQ_NUMBER, "[3] authorisingRemotePartySeqNumber")?,
            "[3] authorisingRemotePartySeqNumber",
        )?;
        let new_floor_seq_number =
            match r.optional(TAG_FLOOR, "[4] newRemotePartyFloorSeqNumber")? {
                Some(t) => Some(parse_u64(&t, "[4] newRemotePartyFloorSeqNumber")?),
                None => None,
            };
        let new_specialist_floor_seq_numbers = match r.optional(
            TAG_SPECIALIST_FLOORS,
            "[5] newRemotePartySpecialistFloorSeqNumber",
        )? {
            Some(t) => Some(decode_specialists(Reader::new(
                t.value,
                t.value_offset,
                r.mode(),
            ))?),
            None => None,
        };
        let other_seq_number_changes =
            match r.optional(TAG_OTHER_CHANGES, "[6] otherRemotePartySeqNumberChanges")? {
                Some(t) => Some(decode_changes(Reader::new(
                    t.value,
                    t.value_offset,
                    r.mode(),
                ))?),
                None => None,
            };
        r.finish("authorisingRemotePartyControl")?;
        Ok(AuthorisingRemotePartyControl {
            mode,
            plaintext_symmetric_key,
            apply_time_based_cpv_checks,
            authorising_cell,
            seq_number,
            new_floor_seq_number,
            new_specialist_floor_seq_numbers,
            other_seq_number_changes,
        })
    }
}

/// The CS02b content: `UpdateSecurityCredentialsCommand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateSecurityCredentials {
    /// Who authorises the change and the sequence-number effects.
    pub control: AuthorisingRemotePartyControl,
    /// The trust anchor replacements, in order.
    pub replacements: Vec<TrustAnchorReplacement>,
    /// The certification path certificates (the issuing CA).
    pub certification_path: Vec<CertificateDer>,
    /// Absent: immediate.
    pub execution: Option<ExecutionDateTime>,
}

impl UpdateSecurityCredentials {
    /// Strict minimal DER.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut body = Vec::with_capacity(2048);
        write_tlv(&mut body, SEQUENCE, &self.control.encode_value());
        let mut reps = Vec::with_capacity(1600);
        for r in &self.replacements {
            let mut e = Vec::with_capacity(r.certificate.0.len() + 16);
            e.extend_from_slice(&r.certificate.0);
            write_tlv(&mut e, SEQUENCE, &r.target.encode_value());
            write_tlv(&mut reps, SEQUENCE, &e);
        }
        write_tlv(&mut body, SEQUENCE, &reps);
        let path: Vec<u8> = self
            .certification_path
            .iter()
            .flat_map(|c| c.0.iter().copied())
            .collect();
        write_tlv(&mut body, SEQUENCE, &path);
        if let Some(e) = &self.execution {
            write_tlv(&mut body, GENERALIZED_TIME, &e.to_generalized_time()?);
        }
        let mut out = Vec::with_capacity(body.len() + 4);
        write_tlv(&mut out, SEQUENCE, &body);
        Ok(out)
    }

    /// Decode strict DER content; `base` is its offset in the message (for errors).
    pub fn decode(content: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut outer = Reader::new(content, base, Lengths::Strict);
        let mut r = outer.nested(SEQUENCE, "UpdateSecurityCredentialsCommand")?;
        outer.finish("CS02b content")?;
        let control = AuthorisingRemotePartyControl::decode_value(
            r.nested(SEQUENCE, "authorisingRemotePartyControl")?,
        )?;
        let mut reps = r.nested(SEQUENCE, "replacements")?;
        let mut replacements = Vec::new();
        while !reps.is_empty() {
            let mut e = reps.nested(SEQUENCE, "TrustAnchorReplacement")?;
            let cert = e.expect(SEQUENCE, "replacingCertificate")?;
            let target = e.expect(SEQUENCE, "targetTrustAnchorCell")?;
            let target = TrustAnchorCell::decode_value(
                Reader::new(target.value, target.value_offset, Lengths::Strict),
                target.offset,
            )?;
            e.finish("TrustAnchorReplacement")?;
            replacements.push(TrustAnchorReplacement {
                certificate: CertificateDer(cert.raw.to_vec()),
                target,
            });
        }
        let mut path_r = r.nested(SEQUENCE, "certificationPathCertificates")?;
        let mut certification_path = Vec::new();
        while !path_r.is_empty() {
            let c = path_r.expect(SEQUENCE, "certification path certificate")?;
            certification_path.push(CertificateDer(c.raw.to_vec()));
        }
        let execution = match r.optional(GENERALIZED_TIME, "executionDateTime")? {
            Some(t) => Some(ExecutionDateTime::decode(&t, "executionDateTime")?),
            None => None,
        };
        r.finish("UpdateSecurityCredentialsCommand")?;
        Ok(UpdateSecurityCredentials {
            control,
            replacements,
            certification_path,
            execution,
        })
    }
}

/// A CS02b command: the grouping-header fields and the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cs02bCommand {
    /// The originator counter (reserved durably before signing).
    pub counter: u64,
    /// The signer's EUI-64 (the CoS party).
    pub originator: Eui64,
    /// The device.
    pub recipient: Eui64,
    /// The message code (0x0107 for mode 7, 0x0106 for mode 6).
    pub message_code: u16,
    /// The content.
    pub content: UpdateSecurityCredentials,
}

/// Inputs for a mode 7 supplierByTransCoS command (SR 6.23).
#[derive(Debug, Clone)]
pub struct SupplierByTransCos {
    /// Originator counter; also `[3] authorisingRemotePartySeqNumber`.
    pub counter: u64,
    /// The CoS party's EUI-64 (TCoS 90B3D51F30000004 in the RTDS).
    pub originator: Eui64,
    /// The device.
    pub recipient: Eui64,
    /// The gaining supplier's DS certificate → {supplier, DS}.
    pub supplier_ds: CertificateDer,
    /// The gaining supplier's KA certificate → {supplier, KA}.
    pub supplier_ka: CertificateDer,
    /// The prepayment top-up KA certificate → {supplier, KA, prepaymentTopUp}.
    pub supplier_pp_ka: Option<CertificateDer>,
    /// Certification path certificates (the issuing CA).
    pub certification_path: Vec<CertificateDer>,
    /// `ApplyTimeBasedCPVChecks` (DUIS); `false` encodes `[1] disapply`.
    pub apply_time_based_cpv_checks: bool,
    /// The supplier's floors set through `[6]`; must be `None` for a cancellation.
    pub supplier_floors: Option<SupplierFloors>,
    /// Absent: immediate; `Cancel`: cancellation.
    pub execution: Option<ExecutionDateTime>,
}

/// The supplier role's floors (`[6]` entry for role 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupplierFloors {
    /// DUIS SupplierFloorSeqNumber.
    pub floor: u64,
    /// DUIS prepayment top-up floor, if any.
    pub prepayment_top_up_floor: Option<u64>,
}

/// Inputs for a mode 6 transCoSByTransCoS command (the CoS credential migration).
#[derive(Debug, Clone)]
pub struct TransCosByTransCos {
    /// Originator counter; also `[3]`.
    pub counter: u64,
    /// The CoS party's EUI-64.
    pub originator: Eui64,
    /// The device.
    pub recipient: Eui64,
    /// The new CoS DS certificate → {transitionalCoS, DS}.
    pub new_cos_ds: CertificateDer,
    /// Certification path certificates.
    pub certification_path: Vec<CertificateDer>,
    /// `false` (the RTDS vector) encodes `[1] disapply`.
    pub apply_time_based_cpv_checks: bool,
    /// `[4]`: the new key holder's floor (reset the role-5 counter), if any.
    pub new_floor_seq_number: Option<u64>,
    /// Absent: immediate.
    pub execution: Option<ExecutionDateTime>,
}

impl Cs02bCommand {
    /// Build a mode 7 (supplierByTransCoS, 0x0107) command.
    pub fn supplier_by_trans_cos(p: SupplierByTransCos) -> Result<Self, EncodeError> {
        if p.execution == Some(ExecutionDateTime::Cancel) && p.supplier_floors.is_some() {
            return Err(EncodeError::Inconsistent(
                "a cancellation carries no [6] sequence-number changes",
            ));
        }
        let mut replacements = vec![
            TrustAnchorReplacement {
                certificate: p.supplier_ds,
                target: TrustAnchorCell::SUPPLIER_DS,
            },
            TrustAnchorReplacement {
                certificate: p.supplier_ka,
                target: TrustAnchorCell::SUPPLIER_KA,
            },
        ];
        if let Some(pp) = p.supplier_pp_ka {
            replacements.push(TrustAnchorReplacement {
                certificate: pp,
                target: TrustAnchorCell::SUPPLIER_PP_KA,
            });
        }
        let other = p.supplier_floors.map(|f| {
            vec![RemotePartySeqNumberChange {
                role: RemotePartyRole::SUPPLIER,
                floor: f.floor,
                specialist_floors: f
                    .prepayment_top_up_floor
                    .map(|pp| vec![SpecialistSeqNumber::prepayment_top_up(pp)]),
            }]
        });
        Ok(Cs02bCommand {
            counter: p.counter,
            originator: p.originator,
            recipient: p.recipient,
            message_code: 0x0107,
            content: UpdateSecurityCredentials {
                control: AuthorisingRemotePartyControl {
                    mode: ReplacementMode::SUPPLIER_BY_TRANS_COS,
                    plaintext_symmetric_key: None,
                    apply_time_based_cpv_checks: p.apply_time_based_cpv_checks,
                    authorising_cell: Some(TrustAnchorCell::TRANS_COS_DS),
                    seq_number: p.counter,
                    new_floor_seq_number: None,
                    new_specialist_floor_seq_numbers: None,
                    other_seq_number_changes: other,
                },
                replacements,
                certification_path: p.certification_path,
                execution: p.execution,
            },
        })
    }

    /// Build a mode 6 (transCoSByTransCoS, 0x0106) command.
    pub fn trans_cos_by_trans_cos(p: TransCosByTransCos) -> Result<Self, EncodeError> {
        Ok(Cs02bCommand {
            counter: p.counter,
            originator: p.originator,
            recipient: p.recipient,
            message_code: 0x0106,
            content: UpdateSecurityCredentials {
                control: AuthorisingRemotePartyControl {
                    mode: ReplacementMode::TRANS_COS_BY_TRANS_COS,
                    plaintext_symmetric_key: None,
                    apply_time_based_cpv_checks: p.apply_time_based_cpv_checks,
                    authorising_cell: Some(TrustAnchorCell::TRANS_COS_DS),
                    seq_number: p.counter,
                    new_floor_seq_number: p.new_floor_seq_number,
                    new_specialist_floor_seq_numbers: None,
                    other_seq_number_changes: None,
                },
                replacements: vec![TrustAnchorReplacement {
                    certificate: p.new_cos_ds,
                    target: TrustAnchorCell::TRANS_COS_DS,
                }],
                certification_path: p.certification_path,
                execution: p.execution,
            },
        })
    }

    /// The header and content of a decoded command frame.
    pub fn from_parts(header: &GroupingHeader, content: UpdateSecurityCredentials) -> Self {
        Cs02bCommand {
            counter: header.counter,
            originator: header.originator,
            recipient: header.recipient,
            message_code: header.message_code,
            content,
        }
    }

    /// The grouping header of this command.
    pub fn header(&self) -> GroupingHeader {
        GroupingHeader {
            cra: Cra::Command,
            counter: self.counter,
            originator: self.originator,
            recipient: self.recipient,
            date_time: None,
            message_code: self.message_code,
        }
    }

    /// The unsigned General-Signing APDU (header and DER content).
    pub fn encode(&self) -> Result<GeneralSigning, EncodeError> {
        Ok(GeneralSigning {
            header: self.header(),
            content: self.content.encode()?,
        })
    }

    /// Sign: `DF … 40 r‖s`, ready for the ACB.
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>, GbcsError> {
        self.encode()?.sign(signer)
    }

    /// Sign and MAC-wrap: the complete message as the device receives it.
    /// `acb` is the ACB key-agreement key, `device_ka` the device's KA public key.
    pub fn sign_and_mac(
        &self,
        signer: &dyn Signer,
        acb: &dyn KeyAgreement,
        device_ka: &P256PublicKey,
    ) -> Result<Vec<u8>, GbcsError> {
        let apdu = self.sign(signer)?;
        crate::mac::wrap(&apdu, acb, device_ka)
    }

    /// The self-check before release (`gbcs-cs02b.md` §13.5): `bytes` (signed,
    /// with or without the MAC layer) re-parse to exactly this command, and
    /// the signature verifies with `key` (the certificate of the key used).
    pub fn check_signed(&self, bytes: &[u8], key: &P256PublicKey) -> Result<(), GbcsError> {
        self.check_encoded(bytes)?.frame.verify_signature(key)
    }

    /// The structural half of [`Cs02bCommand::check_signed`]: `bytes` re-parse
    /// to exactly this command (the signature is not verified). Returns the
    /// decoded message.
    pub fn check_encoded<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<crate::message::Message<'a>, GbcsError> {
        let msg = crate::message::Message::decode(bytes)?;
        if msg.command().as_ref() != Some(self) {
            return Err(GbcsError::Encode(EncodeError::Inconsistent(
                "the signed bytes do not decode to the command that was built",
            )));
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_usage_der() {
        for (ku, want) in [
            (KeyUsage::DIGITAL_SIGNATURE, "0780"),
            (KeyUsage::KEY_AGREEMENT, "0308"),
            (KeyUsage::KEY_CERT_SIGN, "0204"),
            (KeyUsage(0), "00"),
            (KeyUsage(1 << 8), "070080"),
        ] {
            assert_eq!(hex::encode(ku.content()), want, "{ku:?}");
        }
    }

    #[test]
    fn execution_times() {
        let t = ExecutionDateTime::At(jiff::civil::datetime(2030, 1, 2, 0, 0, 0, 0));
        assert_eq!(&t.to_generalized_time().unwrap(), b"20300102000000Z");
        assert_eq!(
            &ExecutionDateTime::Cancel.to_generalized_time().unwrap(),
            b"99991231235959Z"
        );
        let frac = ExecutionDateTime::At(jiff::civil::datetime(2030, 1, 2, 0, 0, 0, 5));
        assert!(frac.to_generalized_time().is_err());
    }
}
