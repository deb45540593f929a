//! Writers of DUIS responses and alerts (`sr:Response`) and of the MMC parsed
//! view of the 6.23 outcome (`ra:GBCSResponse`).
//!
//! Output is compact (no whitespace between elements), starts with
//! `<?xml version="1.0" encoding="UTF-8" standalone="no"?>`, declares `sr`
//! and `ds` on the root and is ready for `ecos-xmldsig` to append the
//! `ds:Signature` as the last child of the root. Every value is checked
//! against its schema type before anything is written.
//!
//! Project decisions (`duis-6.23.md` marks them "P"; the values come from the
//! caller, so configuration decides):
//! - ResponseID of device responses and of the future-dated outcome: the
//!   request's originator and target swapped, the counter unchanged (DCC Boxed).
//!   Acknowledgements and error acknowledgements carry no ResponseID.
//! - The future-dated outcome is written as an `I0` response to the
//!   future-dated request (RequestID echoed).
//! - DCC alerts take their RequestID/ResponseID, ResponseCode and N-code
//!   from the caller; the ECoSAlert and ECoSError code lists are not public.
//! - `ReplacementOutcome` hashes are whatever bytes the caller passes (GBCS
//!   carries 8-byte SKIs where MMC names a SHA-1 hash).
//! - `ResponseDateTime` is written with milliseconds and `Z`, as DCC Boxed does.

use std::borrow::Cow;

use base64::Engine as _;
use ecos_smki::Eui64;
use jiff::Timestamp;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::enums::{RESPONSE_CODES, SERVICE_REFERENCE_VARIANTS, SERVICE_REFERENCES};
use crate::error::{ValueError, WriteError, clip};
use crate::ids::{RequestId, ResponseId};
use crate::request::{RequestHeader, variant_belongs_to};
use crate::xml::{NS_DS, NS_RA, NS_SR};

/// The `schemaVersion` written on every root.
pub const SCHEMA_VERSION: &str = "5.4";

/// A DUIS `sr:ResponseCode` (one of the XSD 5.4 enumeration values).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResponseCode(Cow<'static, str>);

impl ResponseCode {
    /// `I0`: success.
    pub const I0: ResponseCode = ResponseCode(Cow::Borrowed("I0"));
    /// `I99`: acknowledgement.
    pub const I99: ResponseCode = ResponseCode(Cow::Borrowed("I99"));

    /// A code from the XSD 5.4 enumeration, e.g. `E12` or `E062305`.
    pub fn new(code: &str) -> Result<Self, WriteError> {
        match RESPONSE_CODES.iter().find(|c| **c == code) {
            Some(c) => Ok(ResponseCode(Cow::Borrowed(c))),
            None => Err(WriteError::InvalidValue {
                field: "ResponseCode",
                value: clip(code),
                reason: ValueError::NotInEnumeration {
                    allowed: "the DUIS 5.4 response codes",
                },
            }),
        }
    }
    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// An `E…` code.
    pub fn is_error(&self) -> bool {
        self.0.starts_with('E')
    }
}

/// `DCCAlertCode`: `AD1`, `N1`–`N65` (no `N32`) or `N999`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DccAlertCode(String);

impl DccAlertCode {
    /// Check against the XSD 5.4 enumeration.
    pub fn new(code: &str) -> Result<Self, WriteError> {
        let ok = code == "AD1"
            || code == "N999"
            || code.strip_prefix('N').is_some_and(|n| {
                !n.starts_with('0')
                    && n.parse::<u8>()
                        .is_ok_and(|v| (1..=65).contains(&v) && v != 32)
            });
        if ok {
            Ok(DccAlertCode(code.to_string()))
        } else {
            Err(WriteError::InvalidValue {
                field: "DCCAlertCode",
                value: clip(code),
                reason: ValueError::NotInEnumeration {
                    allowed: "AD1, N1-N65 except N32, N999",
                },
            })
        }
    }
    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Outcome of a future-dated command, carried in `FutureDatedDeviceAlertMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FutureDatedOutcome {
    /// `true`: alert 0x8F66 (success); `false`: 0x8F67 (failure).
    pub success: bool,
    /// The raw GBCS alert (written as base64 `GBCSPayload`).
    pub gbcs_payload: Vec<u8>,
    /// `InstructionNumber`.
    pub instruction_number: u16,
    /// `TotalCommandInstructions` (1 for ASN.1 commands such as CS02b).
    pub total_command_instructions: u16,
}

/// `sr:DeviceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceType {
    /// Electricity smart meter.
    Esme,
    /// Gas smart meter.
    Gsme,
    /// Gas proxy function.
    Gpf,
    /// Communications hub function.
    Chf,
    /// HAN-connected auxiliary load control switch.
    Hcalcs,
    /// Prepayment interface device.
    Ppmid,
    /// In-home display.
    Ihd,
    /// Consumer access device.
    Cad,
}

impl DeviceType {
    fn as_str(self) -> &'static str {
        match self {
            DeviceType::Esme => "ESME",
            DeviceType::Gsme => "GSME",
            DeviceType::Gpf => "GPF",
            DeviceType::Chf => "CHF",
            DeviceType::Hcalcs => "HCALCS",
            DeviceType::Ppmid => "PPMID",
            DeviceType::Ihd => "IHD",
            DeviceType::Cad => "CAD",
        }
    }
}

/// `sr:MeterMPxNs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterMpxns {
    /// `ImportMPxN` (1–13 characters).
    pub import_mpxn: String,
    /// `SecondaryImportMPAN` (13 characters).
    pub secondary_import_mpan: Option<String>,
    /// `ExportMPAN` (13 characters).
    pub export_mpan: Option<String>,
}

/// `sr:ECoSAlert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcosAlert {
    /// `AlertID`.
    pub alert_id: RequestId,
    /// `RequestID` of the 6.23 concerned, if any.
    pub request_id: Option<RequestId>,
    /// `ECoSAlertCode` (value list not public: configuration).
    pub ecos_alert_code: String,
    /// `DeviceID`.
    pub device_id: Eui64,
    /// `AdditionalInformation`.
    pub additional_information: Option<String>,
}

/// `sr:ChangeOfSupplier` (a choice of two forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOfSupplier {
    /// About a 6.23 request: its RequestID and, on an ECoS-side failure, a 3-character code.
    Request {
        /// `ChangeOfSupplierServiceRequestID`.
        service_request_id: RequestId,
        /// `ECoSErrorCode` (exactly 3 characters).
        ecos_error_code: Option<String>,
    },
    /// `DeviceChangeOfSupplier`: tells the losing supplier.
    Device {
        /// `DeviceID`.
        device_id: Eui64,
        /// `DeviceType`.
        device_type: DeviceType,
        /// `MPxNs`.
        mpxns: MeterMpxns,
    },
}

/// The body of a DCC alert this crate writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DccAlertBody {
    /// `ECoSAlert`.
    EcosAlert(EcosAlert),
    /// `ChangeOfSupplier`.
    ChangeOfSupplier(ChangeOfSupplier),
}

/// A DCC alert (`sr:Response` with `DCCAlertMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DccAlert {
    /// Header `RequestID` (absent for unsolicited alerts).
    pub request_id: Option<RequestId>,
    /// Header `ResponseID` (e.g. DCC EUI : user EUI : counter; the rule is configuration).
    pub response_id: Option<ResponseId>,
    /// Header `ResponseCode` (normally `I0`).
    pub response_code: ResponseCode,
    /// `DCCAlertCode` (which N-code carries which body is configuration).
    pub alert_code: DccAlertCode,
    /// The alert body.
    pub body: DccAlertBody,
}

/// `ra:RemotePartyRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemotePartyRole {
    /// `ACB`.
    Acb,
    /// `NetworkOperator`.
    NetworkOperator,
    /// `Recovery`.
    Recovery,
    /// `Root`.
    Root,
    /// `Supplier`.
    Supplier,
    /// `TransCoS`.
    TransCoS,
    /// `LoadController`.
    LoadController,
}

impl RemotePartyRole {
    fn as_str(self) -> &'static str {
        match self {
            RemotePartyRole::Acb => "ACB",
            RemotePartyRole::NetworkOperator => "NetworkOperator",
            RemotePartyRole::Recovery => "Recovery",
            RemotePartyRole::Root => "Root",
            RemotePartyRole::Supplier => "Supplier",
            RemotePartyRole::TransCoS => "TransCoS",
            RemotePartyRole::LoadController => "LoadController",
        }
    }
}

/// `CredentialsReplacementMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialsReplacementMode {
    /// SR 8.5.
    AcbByAcb,
    /// SR 6.15.1, 6.21.
    SupplierBySupplier,
    /// SR 6.15.1, 6.21.
    NetworkOperatorByNetworkOperator,
    /// SR 6.15.1.
    LoadControllerBySupplier,
    /// SR 6.23 (GBCS mode 7).
    SupplierByTransCoS,
}

impl CredentialsReplacementMode {
    fn as_str(self) -> &'static str {
        match self {
            CredentialsReplacementMode::AcbByAcb => "ACBByACB",
            CredentialsReplacementMode::SupplierBySupplier => "SupplierBySupplier",
            CredentialsReplacementMode::NetworkOperatorByNetworkOperator => {
                "NetworkOperatorByNetworkOperator"
            }
            CredentialsReplacementMode::LoadControllerBySupplier => "LoadControllerBySupplier",
            CredentialsReplacementMode::SupplierByTransCoS => "SupplierByTransCoS",
        }
    }
}

/// `CertificateType` of a replacement outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateType {
    /// Digital signing.
    DigitalSigning,
    /// Key agreement.
    KeyAgreement,
    /// Key agreement, prepayment top-up cell.
    KeyAgreementTopUp,
    /// Key cert sign.
    KeyCertSign,
}

impl CertificateType {
    fn as_str(self) -> &'static str {
        match self {
            CertificateType::DigitalSigning => "DigitalSigning",
            CertificateType::KeyAgreement => "KeyAgreement",
            CertificateType::KeyAgreementTopUp => "KeyAgreementTopUp",
            CertificateType::KeyCertSign => "KeyCertSign",
        }
    }
}

/// `ASN1Status` values for 6.15.1 / 6.21 / 6.23 / 8.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Asn1Status {
    /// GBCS 0.
    Success,
    /// Any GBCS value without an MMC name.
    NotKnown,
    /// GBCS 5.
    BadCertificate,
    /// GBCS 10.
    NoTrustAnchor,
    /// GBCS 17.
    InsufficientMemory,
    /// GBCS 30.
    ResourcesBusy,
    /// GBCS 127.
    Other,
}

impl Asn1Status {
    /// Map the GBCS replacement status number to its MMC name.
    pub fn from_gbcs(v: i64) -> Self {
        match v {
            0 => Asn1Status::Success,
            5 => Asn1Status::BadCertificate,
            10 => Asn1Status::NoTrustAnchor,
            17 => Asn1Status::InsufficientMemory,
            30 => Asn1Status::ResourcesBusy,
            127 => Asn1Status::Other,
            _ => Asn1Status::NotKnown,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Asn1Status::Success => "success",
            Asn1Status::NotKnown => "notKnown",
            Asn1Status::BadCertificate => "badCertificate",
            Asn1Status::NoTrustAnchor => "noTrustAnchor",
            Asn1Status::InsufficientMemory => "insufficientMemory",
            Asn1Status::ResourcesBusy => "resourcesBusy",
            Asn1Status::Other => "other",
        }
    }
}

/// One `ReplacementOutcome`: the cell (role + certificate type), the status,
/// and the old and new party IDs and certificate hashes.
///
/// GBCS carries 8-byte SKIs where MMC names a "SHA1" hash; which bytes go
/// here is the caller's (configured) choice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplacementOutcome {
    /// The GBCS replacement status number (`statusCode`): written as
    /// `StatusCode/@ResponseCode` with its `ASN1Status` name (see [`Asn1Status::from_gbcs`]).
    pub gbcs_status: Option<i64>,
    /// `CertificateType`.
    pub certificate_type: Option<CertificateType>,
    /// `RemotePartyRole`.
    pub role: Option<RemotePartyRole>,
    /// `ExistingRemotePartyID`.
    pub existing_id: Option<Eui64>,
    /// `NewRemotePartyID`.
    pub new_id: Option<Eui64>,
    /// `ExistingCertificateHash` (written as base64).
    pub existing_hash: Option<Vec<u8>>,
    /// `NewCertificateHash` (written as base64).
    pub new_hash: Option<Vec<u8>>,
}

/// `RemotePartySeqNumberChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemotePartySeqNumberChange {
    /// `RemotePartyRole`.
    pub role: Option<RemotePartyRole>,
    /// `RemotePartyFloorSeqNumber`.
    pub floor_seq_number: Option<u64>,
    /// `RemotePartyPrepaymentTopUpFloorSeqNumber`.
    pub prepayment_top_up_floor_seq_number: Option<u64>,
}

/// `ra:ExecutionOutcome`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecutionOutcome {
    /// `AuthorisingRemotePartyOriginatorCounter`.
    pub authorising_remote_party_originator_counter: Option<u64>,
    /// `CredentialsReplacementMode`.
    pub credentials_replacement_mode: Option<CredentialsReplacementMode>,
    /// `RemotePartySeqNumberChange`.
    pub seq_number_change: Option<RemotePartySeqNumberChange>,
    /// `ReplacementOutcome`, at most 3.
    pub replacement_outcomes: Vec<ReplacementOutcome>,
}

/// `ra:HeaderType` of the MMC document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmcHeader {
    /// `BusinessOriginatorID` (the device).
    pub business_originator: Eui64,
    /// `BusinessTargetID` (the GBCS response's target: the CoS party or the user).
    pub business_target: Eui64,
    /// `OriginatorCounter` (the GBCS counter).
    pub originator_counter: u64,
    /// `GBCSHexadecimalMessageCode`, if known.
    pub message_code: Option<u16>,
    /// `Timestamp`, if known.
    pub timestamp: Option<Timestamp>,
}

/// The MMC view of a future-dated 6.23 outcome alert (0x8F66 / 0x8F67).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmcCosAlert {
    /// `GBCSHexAlertCode` (0x8F66 or 0x8F67).
    pub alert_code: u16,
    /// `AlertDescription` (at most 250 characters).
    pub description: String,
    /// `Timestamp` of the alert.
    pub timestamp: Timestamp,
    /// `UpdateSecurityCredentialsExecutionOutcome`.
    pub outcome: ExecutionOutcome,
}

// ---------------------------------------------------------------------------

fn bad(field: &'static str, value: &str, reason: ValueError) -> WriteError {
    WriteError::InvalidValue {
        field,
        value: clip(value),
        reason,
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn check_text(field: &'static str, s: &str) -> Result<(), WriteError> {
    match s.chars().find(|c| !is_xml_char(*c)) {
        Some(c) => Err(WriteError::Inconsistent(format!(
            "{field}: character U+{:04X} is not allowed in XML",
            c as u32
        ))),
        None => Ok(()),
    }
}

fn check_len(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), WriteError> {
    check_text(field, s)?;
    let len = s.chars().count();
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(bad(field, s, ValueError::Length { len, min, max }))
    }
}

/// `2022-08-17T15:45:42.790Z`: milliseconds and `Z`, as DCC Boxed writes.
pub fn format_date_time(ts: Timestamp) -> Result<String, WriteError> {
    let dt = jiff::tz::TimeZone::UTC.to_datetime(ts);
    if dt.year() < 1 {
        return Err(WriteError::Inconsistent(format!(
            "date-time {ts} is before year 1"
        )));
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000_000
    ))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A compact XML writer over a byte buffer.
struct Out {
    w: Writer<Vec<u8>>,
}

impl Out {
    fn new() -> Result<Self, WriteError> {
        let mut w = Writer::new(Vec::with_capacity(1024));
        w.write_event(Event::Decl(BytesDecl::new(
            "1.0",
            Some("UTF-8"),
            Some("no"),
        )))?;
        Ok(Out { w })
    }
    fn open_root(&mut self, name: &str, attrs: &[(&str, &str)]) -> Result<(), WriteError> {
        let mut s = BytesStart::new(name);
        for (k, v) in attrs {
            s.push_attribute((*k, *v));
        }
        self.w.write_event(Event::Start(s))?;
        Ok(())
    }
    fn open(&mut self, name: &str) -> Result<(), WriteError> {
        self.w.write_event(Event::Start(BytesStart::new(name)))?;
        Ok(())
    }
    fn close(&mut self, name: &str) -> Result<(), WriteError> {
        self.w.write_event(Event::End(BytesEnd::new(name)))?;
        Ok(())
    }
    fn leaf(&mut self, name: &str, text: &str) -> Result<(), WriteError> {
        self.open(name)?;
        if text.contains('\r') {
            // a literal CR would be normalised to LF by every reader
            let escaped = quick_xml::escape::escape(text).replace('\r', "&#13;");
            self.w
                .write_event(Event::Text(BytesText::from_escaped(escaped)))?;
        } else {
            self.w.write_event(Event::Text(BytesText::new(text)))?;
        }
        self.close(name)
    }
    fn finish(self) -> Vec<u8> {
        self.w.into_inner()
    }
}

/// Validated (ServiceReference, ServiceReferenceVariant) of a request header.
fn service_of(h: &RequestHeader) -> Result<(&str, &str), WriteError> {
    let r = h.service_reference.as_str();
    let v = h.service_reference_variant.as_str();
    if !SERVICE_REFERENCES.contains(&r) {
        return Err(bad(
            "ServiceReference",
            r,
            ValueError::NotInEnumeration {
                allowed: "the DUIS 5.4 Service References",
            },
        ));
    }
    if !SERVICE_REFERENCE_VARIANTS.contains(&v) || !variant_belongs_to(v, r) {
        return Err(bad(
            "ServiceReferenceVariant",
            v,
            ValueError::NotInEnumeration {
                allowed: "a DUIS 5.4 variant of the Service Reference",
            },
        ));
    }
    Ok((r, v))
}

struct Envelope<'a> {
    request_id: Option<&'a RequestId>,
    response_id: Option<&'a ResponseId>,
    code: &'a ResponseCode,
    at: Timestamp,
}

/// `sr:Response` root, header and `sr:Body` open; the caller writes the body
/// choice and calls [`close_response`].
fn open_response(env: &Envelope<'_>) -> Result<Out, WriteError> {
    let at = format_date_time(env.at)?;
    let mut o = Out::new()?;
    o.open_root(
        "sr:Response",
        &[
            ("xmlns:sr", NS_SR),
            ("xmlns:ds", NS_DS),
            ("schemaVersion", SCHEMA_VERSION),
        ],
    )?;
    o.open("sr:Header")?;
    if let Some(id) = env.request_id {
        o.leaf("sr:RequestID", &id.to_string())?;
    }
    if let Some(id) = env.response_id {
        o.leaf("sr:ResponseID", &id.to_string())?;
    }
    o.leaf("sr:ResponseCode", env.code.as_str())?;
    o.leaf("sr:ResponseDateTime", &at)?;
    o.close("sr:Header")?;
    o.open("sr:Body")?;
    Ok(o)
}

fn close_response(mut o: Out) -> Result<Vec<u8>, WriteError> {
    o.close("sr:Body")?;
    o.close("sr:Response")?;
    Ok(o.finish())
}

fn response_message_start(o: &mut Out, h: &RequestHeader) -> Result<(), WriteError> {
    let (r, v) = service_of(h)?;
    o.open("sr:ResponseMessage")?;
    o.leaf("sr:ServiceReference", r)?;
    o.leaf("sr:ServiceReferenceVariant", v)
}

/// The I99 acknowledgement: RequestID echoed, no ResponseID, a
/// `ResponseMessage` with only ServiceReference and Variant.
pub fn acknowledgement(request: &RequestHeader, at: Timestamp) -> Result<Vec<u8>, WriteError> {
    let mut o = open_response(&Envelope {
        request_id: Some(&request.request_id),
        response_id: None,
        code: &ResponseCode::I99,
        at,
    })?;
    response_message_start(&mut o, request)?;
    o.close("sr:ResponseMessage")?;
    close_response(o)
}

/// A synchronous error acknowledgement (`E…`): like I99 with the error code.
pub fn error_acknowledgement(
    request: &RequestHeader,
    code: &ResponseCode,
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    error_message(request, code, None, at)
}

/// An asynchronous error response (`E…`) to a request that was acknowledged
/// earlier, such as E21 (no response from the device) or E30 (future-dated
/// time-out): ResponseID = the request's target and originator swapped, same
/// counter (as [`device_response`]), no payload.
pub fn error_response(
    request: &RequestHeader,
    code: &ResponseCode,
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    let rid = request.request_id.response_id();
    error_message(request, code, Some(&rid), at)
}

fn error_message(
    request: &RequestHeader,
    code: &ResponseCode,
    response_id: Option<&ResponseId>,
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    if !code.is_error() {
        return Err(bad(
            "ResponseCode",
            code.as_str(),
            ValueError::NotInEnumeration {
                allowed: "an E… code",
            },
        ));
    }
    bare_message(request, code, response_id, at)
}

/// A response whose `ResponseMessage` holds only the service reference.
fn bare_message(
    request: &RequestHeader,
    code: &ResponseCode,
    response_id: Option<&ResponseId>,
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    let mut o = open_response(&Envelope {
        request_id: Some(&request.request_id),
        response_id,
        code,
        at,
    })?;
    response_message_start(&mut o, request)?;
    o.close("sr:ResponseMessage")?;
    close_response(o)
}

/// An I0 response completed by the DSP without the device, such as a
/// cancellation of a held future-dated request whose command never left
/// (`ecos-domain.md` §4): ResponseID = the request's target and originator
/// swapped, same counter (as [`device_response`]), no payload.
pub fn dsp_response(request: &RequestHeader, at: Timestamp) -> Result<Vec<u8>, WriteError> {
    let rid = request.request_id.response_id();
    bare_message(request, &ResponseCode::I0, Some(&rid), at)
}

/// An I0 device response carrying the raw GBCS response as `GBCSPayload`;
/// ResponseID = the request's target and originator swapped, same counter.
pub fn device_response(
    request: &RequestHeader,
    gbcs_payload: &[u8],
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    if gbcs_payload.is_empty() {
        return Err(WriteError::Inconsistent(
            "GBCSPayload: empty GBCS payload".to_string(),
        ));
    }
    let rid = request.request_id.response_id();
    let mut o = open_response(&Envelope {
        request_id: Some(&request.request_id),
        response_id: Some(&rid),
        code: &ResponseCode::I0,
        at,
    })?;
    response_message_start(&mut o, request)?;
    o.leaf("sr:GBCSPayload", &b64(gbcs_payload))?;
    o.close("sr:ResponseMessage")?;
    close_response(o)
}

/// The future-dated outcome (device alert 0x8F66 / 0x8F67) as a response to
/// the future-dated request: `ResponseMessage/FutureDatedDeviceAlertMessage`.
pub fn future_dated_response(
    request: &RequestHeader,
    outcome: &FutureDatedOutcome,
    at: Timestamp,
) -> Result<Vec<u8>, WriteError> {
    if outcome.gbcs_payload.is_empty() {
        return Err(WriteError::Inconsistent(
            "GBCSPayload: empty GBCS payload".to_string(),
        ));
    }
    if outcome.instruction_number == 0
        || outcome.instruction_number > outcome.total_command_instructions
    {
        return Err(WriteError::Inconsistent(format!(
            "InstructionNumber {} outside 1..={}",
            outcome.instruction_number, outcome.total_command_instructions
        )));
    }
    let rid = request.request_id.response_id();
    let mut o = open_response(&Envelope {
        request_id: Some(&request.request_id),
        response_id: Some(&rid),
        code: &ResponseCode::I0,
        at,
    })?;
    response_message_start(&mut o, request)?;
    o.open("sr:FutureDatedDeviceAlertMessage")?;
    o.leaf(
        "sr:FutureDatedAlertCode",
        if outcome.success { "8F66" } else { "8F67" },
    )?;
    o.leaf("sr:GBCSPayload", &b64(&outcome.gbcs_payload))?;
    o.leaf(
        "sr:InstructionNumber",
        &outcome.instruction_number.to_string(),
    )?;
    o.leaf(
        "sr:TotalCommandInstructions",
        &outcome.total_command_instructions.to_string(),
    )?;
    o.close("sr:FutureDatedDeviceAlertMessage")?;
    o.close("sr:ResponseMessage")?;
    close_response(o)
}

/// A DCC alert: `DCCAlertMessage` with an `ECoSAlert` or `ChangeOfSupplier` body.
pub fn dcc_alert(alert: &DccAlert, at: Timestamp) -> Result<Vec<u8>, WriteError> {
    // validate the body before writing anything
    match &alert.body {
        DccAlertBody::EcosAlert(a) => {
            check_text("ECoSAlertCode", &a.ecos_alert_code)?;
            if let Some(info) = &a.additional_information {
                check_text("AdditionalInformation", info)?;
            }
        }
        DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Request {
            ecos_error_code, ..
        }) => {
            if let Some(code) = ecos_error_code {
                check_len("ECoSErrorCode", code, 3, 3)?;
            }
        }
        DccAlertBody::ChangeOfSupplier(ChangeOfSupplier::Device { mpxns, .. }) => {
            check_len("ImportMPxN", &mpxns.import_mpxn, 1, 13)?;
            if let Some(m) = &mpxns.secondary_import_mpan {
                check_len("SecondaryImportMPAN", m, 13, 13)?;
            }
            if let Some(m) = &mpxns.export_mpan {
                check_len("ExportMPAN", m, 13, 13)?;
            }
        }
    }
    let mut o = open_response(&Envelope {
        request_id: alert.request_id.as_ref(),
        response_id: alert.response_id.as_ref(),
        code: &alert.response_code,
        at,
    })?;
    o.open("sr:DCCAlertMessage")?;
    o.leaf("sr:DCCAlertCode", alert.alert_code.as_str())?;
    o.open("sr:DCCAlert")?;
    match &alert.body {
        DccAlertBody::EcosAlert(a) => {
            o.open("sr:ECoSAlert")?;
            o.leaf("sr:AlertID", &a.alert_id.to_string())?;
            if let Some(r) = &a.request_id {
                o.leaf("sr:RequestID", &r.to_string())?;
            }
            o.leaf("sr:ECoSAlertCode", &a.ecos_alert_code)?;
            o.leaf("sr:DeviceID", &a.device_id.to_string())?;
            if let Some(info) = &a.additional_information {
                o.leaf("sr:AdditionalInformation", info)?;
            }
            o.close("sr:ECoSAlert")?;
        }
        DccAlertBody::ChangeOfSupplier(c) => {
            o.open("sr:ChangeOfSupplier")?;
            match c {
                ChangeOfSupplier::Request {
                    service_request_id,
                    ecos_error_code,
                } => {
                    o.leaf(
                        "sr:ChangeOfSupplierServiceRequestID",
                        &service_request_id.to_string(),
                    )?;
                    if let Some(code) = ecos_error_code {
                        o.leaf("sr:ECoSErrorCode", code)?;
                    }
                }
                ChangeOfSupplier::Device {
                    device_id,
                    device_type,
                    mpxns,
                } => {
                    o.open("sr:DeviceChangeOfSupplier")?;
                    o.leaf("sr:DeviceID", &device_id.to_string())?;
                    o.leaf("sr:DeviceType", device_type.as_str())?;
                    o.open("sr:MPxNs")?;
                    o.leaf("sr:ImportMPxN", &mpxns.import_mpxn)?;
                    if let Some(m) = &mpxns.secondary_import_mpan {
                        o.leaf("sr:SecondaryImportMPAN", m)?;
                    }
                    if let Some(m) = &mpxns.export_mpan {
                        o.leaf("sr:ExportMPAN", m)?;
                    }
                    o.close("sr:MPxNs")?;
                    o.close("sr:DeviceChangeOfSupplier")?;
                }
            }
            o.close("sr:ChangeOfSupplier")?;
        }
    }
    o.close("sr:DCCAlert")?;
    o.close("sr:DCCAlertMessage")?;
    close_response(o)
}

// --- the request itself (supplier side: simulators and tests) ---------------

/// Write a 6.23 request as a supplier would send it (before signing): the
/// inverse of [`crate::read_request`]. The cancellation is written as
/// `3000-12-31T00:00:00.00Z`, as in the RTDS templates.
pub fn cos_request(request: &crate::CosRequest) -> Result<Vec<u8>, WriteError> {
    use crate::request::Execution;
    let h = &request.header;
    if h.service_reference != "6.23" || h.service_reference_variant != "6.23" {
        return Err(WriteError::Inconsistent(format!(
            "a 6.23 body needs ServiceReference 6.23/6.23, not {}/{}",
            h.service_reference, h.service_reference_variant
        )));
    }
    crate::values::decimal(&request.schema_version)
        .map_err(|r| bad("schemaVersion", &request.schema_version, r))?;
    let b = &request.body;
    if b.supplier_floor_seq_number > crate::MAX_FLOOR_SEQ_NUMBER
        || b.supplier_prepayment_top_up_floor_seq_number
            .is_some_and(|n| n > crate::MAX_FLOOR_SEQ_NUMBER)
    {
        return Err(WriteError::Inconsistent(
            "floor sequence number above 2^63-1".to_string(),
        ));
    }
    if !(1..=3).contains(&b.certification_path.len()) {
        return Err(WriteError::Inconsistent(format!(
            "{} certification path certificates, 1 to 3 allowed",
            b.certification_path.len()
        )));
    }
    check_len("ImportMPxN", &b.import_mpxn, 1, 13)?;
    let mut o = Out::new()?;
    o.open_root(
        "sr:Request",
        &[
            ("xmlns:sr", NS_SR),
            ("xmlns:ds", NS_DS),
            ("schemaVersion", request.schema_version.as_str()),
        ],
    )?;
    o.open("sr:Header")?;
    o.leaf("sr:RequestID", &h.request_id.to_string())?;
    if let Some(f) = h.first_in_sequence {
        o.leaf("sr:FirstInSequence", if f { "true" } else { "false" })?;
    }
    if let Some(p) = &h.preceding_request_id {
        o.leaf("sr:PrecedingServiceRequestID", &p.to_string())?;
    }
    o.leaf("sr:CommandVariant", &h.command_variant.get().to_string())?;
    o.leaf("sr:ServiceReference", "6.23")?;
    o.leaf("sr:ServiceReferenceVariant", "6.23")?;
    o.close("sr:Header")?;
    o.open("sr:Body")?;
    o.open("sr:UpdateSecurityCredentialsCoS")?;
    match b.execution {
        Execution::Immediate => {}
        Execution::FutureDated(t) => o.leaf("sr:ExecutionDateTime", &format_date_time(t)?)?,
        Execution::Cancellation => o.leaf("sr:ExecutionDateTime", "3000-12-31T00:00:00.00Z")?,
    }
    o.leaf(
        "sr:SupplierFloorSeqNumber",
        &b.supplier_floor_seq_number.to_string(),
    )?;
    if let Some(n) = b.supplier_prepayment_top_up_floor_seq_number {
        o.leaf("sr:SupplierPrepaymentTopUpFloorSeqNumber", &n.to_string())?;
    }
    let rc = &b.replacement_certificates;
    o.open("sr:SupplierReplacementCertificates")?;
    o.leaf(
        "sr:DigitalSigningCertificate",
        &b64(rc.digital_signing.der()),
    )?;
    if let Some(c) = &rc.key_agreement {
        o.leaf("sr:KeyAgreementCertificate", &b64(c.der()))?;
    }
    if let Some(c) = &rc.key_agreement_top_up {
        o.leaf("sr:KeyAgreementTopUpCertificate", &b64(c.der()))?;
    }
    o.close("sr:SupplierReplacementCertificates")?;
    o.open("sr:CertificationPathCertificates")?;
    for c in &b.certification_path {
        o.leaf("sr:Certificate", &b64(c.der()))?;
    }
    o.close("sr:CertificationPathCertificates")?;
    o.leaf(
        "sr:ApplyTimeBasedCPVChecks",
        if b.apply_time_based_cpv_checks {
            "true"
        } else {
            "false"
        },
    )?;
    o.leaf("sr:ImportMPxN", &b.import_mpxn)?;
    o.close("sr:UpdateSecurityCredentialsCoS")?;
    o.close("sr:Body")?;
    o.close("sr:Request")?;
    Ok(o.finish())
}

// --- MMC parsed view --------------------------------------------------------

fn mmc_open(h: &MmcHeader, service: bool) -> Result<Out, WriteError> {
    let ts = h.timestamp.map(format_date_time).transpose()?;
    let mut o = Out::new()?;
    o.open_root(
        "ra:GBCSResponse",
        &[("xmlns:ra", NS_RA), ("schemaVersion", SCHEMA_VERSION)],
    )?;
    o.open("ra:Header")?;
    o.leaf(
        "ra:BusinessOriginatorID",
        &h.business_originator.to_string(),
    )?;
    o.leaf("ra:BusinessTargetID", &h.business_target.to_string())?;
    o.leaf("ra:OriginatorCounter", &h.originator_counter.to_string())?;
    if let Some(code) = h.message_code {
        o.leaf("ra:GBCSHexadecimalMessageCode", &format!("{code:04X}"))?;
    }
    if service {
        o.leaf("ra:ServiceReference", "6.23")?;
        o.leaf("ra:ServiceReferenceVariant", "6.23")?;
    }
    if let Some(ts) = &ts {
        o.leaf("ra:Timestamp", ts)?;
    }
    o.close("ra:Header")?;
    o.open("ra:Body")?;
    Ok(o)
}

fn mmc_close(mut o: Out) -> Result<Vec<u8>, WriteError> {
    o.close("ra:Body")?;
    o.close("ra:GBCSResponse")?;
    Ok(o.finish())
}

fn write_outcome(o: &mut Out, tag: &str, x: &ExecutionOutcome) -> Result<(), WriteError> {
    if x.replacement_outcomes.len() > 3 {
        return Err(WriteError::Inconsistent(format!(
            "ExecutionOutcome: {} ReplacementOutcome elements, at most 3 allowed",
            x.replacement_outcomes.len()
        )));
    }
    o.open(tag)?;
    if let Some(c) = x.authorising_remote_party_originator_counter {
        o.leaf("ra:AuthorisingRemotePartyOriginatorCounter", &c.to_string())?;
    }
    if let Some(m) = x.credentials_replacement_mode {
        o.leaf("ra:CredentialsReplacementMode", m.as_str())?;
    }
    if let Some(s) = &x.seq_number_change {
        o.open("ra:RemotePartySeqNumberChange")?;
        if let Some(r) = s.role {
            o.leaf("ra:RemotePartyRole", r.as_str())?;
        }
        if let Some(n) = s.floor_seq_number {
            o.leaf("ra:RemotePartyFloorSeqNumber", &n.to_string())?;
        }
        if let Some(n) = s.prepayment_top_up_floor_seq_number {
            o.leaf(
                "ra:RemotePartyPrepaymentTopUpFloorSeqNumber",
                &n.to_string(),
            )?;
        }
        o.close("ra:RemotePartySeqNumberChange")?;
    }
    for r in &x.replacement_outcomes {
        o.open("ra:ReplacementOutcome")?;
        if let Some(code) = r.gbcs_status {
            let mut st = BytesStart::new("ra:StatusCode");
            st.push_attribute(("ResponseCode", code.to_string().as_str()));
            o.w.write_event(Event::Start(st))?;
            o.leaf("ra:ASN1Status", Asn1Status::from_gbcs(code).as_str())?;
            o.close("ra:StatusCode")?;
        }
        if let Some(t) = r.certificate_type {
            o.leaf("ra:CertificateType", t.as_str())?;
        }
        if let Some(role) = r.role {
            o.leaf("ra:RemotePartyRole", role.as_str())?;
        }
        if let Some(id) = r.existing_id {
            o.leaf("ra:ExistingRemotePartyID", &id.to_string())?;
        }
        if let Some(id) = r.new_id {
            o.leaf("ra:NewRemotePartyID", &id.to_string())?;
        }
        if let Some(h) = &r.existing_hash {
            o.leaf("ra:ExistingCertificateHash", &b64(h))?;
        }
        if let Some(h) = &r.new_hash {
            o.leaf("ra:NewCertificateHash", &b64(h))?;
        }
        o.close("ra:ReplacementOutcome")?;
    }
    o.close(tag)
}

/// The MMC parsed view of a 6.23 device response:
/// `ra:GBCSResponse/Body/ResponseMessage/SMETSData/UpdateSecurityCredentialsCoSRsp`,
/// with `ExecutionOutcome` (absent for future-dated and cancellation acceptance).
pub fn mmc_cos_response(
    header: &MmcHeader,
    message_success: Option<bool>,
    outcome: Option<&ExecutionOutcome>,
) -> Result<Vec<u8>, WriteError> {
    let mut o = mmc_open(header, true)?;
    o.open("ra:ResponseMessage")?;
    o.open("ra:SMETSData")?;
    let mut s = BytesStart::new("ra:UpdateSecurityCredentialsCoSRsp");
    if let Some(ok) = message_success {
        s.push_attribute(("MessageSuccess", if ok { "true" } else { "false" }));
    }
    o.w.write_event(Event::Start(s))?;
    if let Some(x) = outcome {
        write_outcome(&mut o, "ra:ExecutionOutcome", x)?;
    }
    o.close("ra:UpdateSecurityCredentialsCoSRsp")?;
    o.close("ra:SMETSData")?;
    o.close("ra:ResponseMessage")?;
    mmc_close(o)
}

/// The MMC parsed view of the future-dated 6.23 outcome alert (0x8F66/0x8F67):
/// `DeviceAlertMessage/DeviceAlertContent/Payload/FutureDatedCommandOutcomeDeviceAlert/
/// UpdateSecurityCredentialsDeviceAlert/UpdateSecurityCredentialsExecutionOutcome`.
pub fn mmc_cos_alert(header: &MmcHeader, alert: &MmcCosAlert) -> Result<Vec<u8>, WriteError> {
    if alert.alert_code != 0x8F66 && alert.alert_code != 0x8F67 {
        return Err(bad(
            "GBCSHexAlertCode",
            &format!("{:04X}", alert.alert_code),
            ValueError::NotInEnumeration {
                allowed: "8F66 or 8F67",
            },
        ));
    }
    check_len("AlertDescription", &alert.description, 0, 250)?;
    let ts = format_date_time(alert.timestamp)?;
    let mut o = mmc_open(header, false)?;
    o.open("ra:DeviceAlertMessage")?;
    o.open("ra:DeviceAlertContent")?;
    o.leaf("ra:GBCSHexAlertCode", &format!("{:04X}", alert.alert_code))?;
    o.leaf("ra:AlertDescription", &alert.description)?;
    o.leaf("ra:Timestamp", &ts)?;
    o.open("ra:Payload")?;
    o.open("ra:FutureDatedCommandOutcomeDeviceAlert")?;
    o.open("ra:UpdateSecurityCredentialsDeviceAlert")?;
    write_outcome(
        &mut o,
        "ra:UpdateSecurityCredentialsExecutionOutcome",
        &alert.outcome,
    )?;
    o.close("ra:UpdateSecurityCredentialsDeviceAlert")?;
    o.close("ra:FutureDatedCommandOutcomeDeviceAlert")?;
    o.close("ra:Payload")?;
    o.close("ra:DeviceAlertContent")?;
    o.close("ra:DeviceAlertMessage")?;
    mmc_close(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(ResponseCode::new("E062305").is_ok());
        assert!(ResponseCode::new("E062307").is_err());
        assert!(ResponseCode::new("I0").is_ok_and(|c| !c.is_error()));
        for c in ["AD1", "N1", "N31", "N33", "N65", "N999"] {
            assert!(DccAlertCode::new(c).is_ok(), "{c}");
        }
        for c in ["N0", "N32", "N66", "N01", "X1", "N", ""] {
            assert!(DccAlertCode::new(c).is_err(), "{c}");
        }
    }

    #[test]
    fn date_time_is_milliseconds_and_z() {
        let t: Timestamp = "2022-08-17T15:45:42.790123Z".parse().unwrap();
        assert_eq!(format_date_time(t).unwrap(), "2022-08-17T15:45:42.790Z");
    }

    #[test]
    fn asn1_status_mapping() {
        assert_eq!(Asn1Status::from_gbcs(0), Asn1Status::Success);
        assert_eq!(Asn1Status::from_gbcs(5), Asn1Status::BadCertificate);
        assert_eq!(Asn1Status::from_gbcs(10), Asn1Status::NoTrustAnchor);
        assert_eq!(Asn1Status::from_gbcs(17), Asn1Status::InsufficientMemory);
        assert_eq!(Asn1Status::from_gbcs(30), Asn1Status::ResourcesBusy);
        assert_eq!(Asn1Status::from_gbcs(127), Asn1Status::Other);
        assert_eq!(Asn1Status::from_gbcs(3), Asn1Status::NotKnown);
    }
}
