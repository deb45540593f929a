//! DUIS 5.4 XML for the ECoS party: a hardened reader of Service Request 6.23
//! "Update Security Credentials (CoS)" (and of the header of any other
//! request), and writers of the DUIS responses and alerts the DCC sends.
//!
//! Reading refuses any DOCTYPE, caps size, nodes, depth, attributes and
//! values ([`Limits`]), and rejects missing, duplicate, misplaced and unknown
//! elements with a [`DuisError`] that names the element path. Signature
//! verification is not done here: `ecos-xmldsig` verifies first and hands
//! the verified bytes to [`read_request`], which ignores `ds:Signature`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod enums;
mod error;
mod ids;
mod request;
mod values;
pub mod write;
pub mod xml;

pub use error::{DuisError, ValueError, WriteError};
pub use ids::{RequestId, RequestIdError, ResponseId};
pub use request::{
    CANCELLATION_SENTINEL, CERTIFICATE_CACHE_CAPACITY, CommandVariant, CosRequest, DuisRequest,
    Execution, MAX_FLOOR_SEQ_NUMBER, RequestHeader, SupplierReplacementCertificates,
    UpdateSecurityCredentialsCoS, cancellation_sentinel, certificate_cache_stats, read_parsed,
    read_request, read_request_header, read_signed,
};
pub use write::{
    Asn1Status, CertificateType, ChangeOfSupplier, CredentialsReplacementMode, DccAlert,
    DccAlertBody, DccAlertCode, DeviceType, EcosAlert, ExecutionOutcome, FutureDatedOutcome,
    MeterMpxns, MmcCosAlert, MmcHeader, RemotePartyRole, RemotePartySeqNumberChange,
    ReplacementOutcome, ResponseCode, acknowledgement, cos_request, dcc_alert, device_response,
    dsp_response, error_acknowledgement, error_response, future_dated_response, mmc_cos_alert,
    mmc_cos_response,
};
pub use xml::Limits;
