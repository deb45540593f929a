//! The supplier side of DUIS 6.23: build a request (`ecos-duis` writer),
//! sign it with an organisation's XML Sign key (`ecos-xmldsig`), optionally
//! spoil it on purpose, and POST it to `/api/v1/serviceS`.

use std::sync::Arc;

use ecos_duis::{
    CommandVariant, CosRequest, Execution, RequestHeader, RequestId,
    SupplierReplacementCertificates, UpdateSecurityCredentialsCoS,
};
use ecos_smki::testpki::{TestPki, TestPkiSpec};
use ecos_smki::{Certificate, Eui64, Signer};
use jiff::Timestamp;

use crate::error::SimError;
use crate::headend::SupplierCredentials;

/// An organisation as a supplier: its XML Sign credential, the supplier
/// certificates it puts on devices, and its supplier DS key (used only to
/// make wrong-role requests).
#[derive(Debug, Clone)]
pub struct SupplierOrg {
    /// The organisation EUI (RequestID originator).
    pub eui: Eui64,
    /// XML Sign key (`OU=87`).
    pub xml_sign: Arc<dyn Signer>,
    /// XML Sign certificate.
    pub xml_sign_cert: Certificate,
    /// The supplier DS key (`OU=02`), for [`Defect::WrongRole`].
    pub ds: Option<Arc<dyn Signer>>,
    /// The certificates a 6.23 carries.
    pub credentials: SupplierCredentials,
}

impl SupplierOrg {
    /// The organisation `eui` of a test PKI.
    pub fn from_test_pki(pki: &TestPki, eui: Eui64) -> Result<SupplierOrg, SimError> {
        let o = pki
            .organisation(eui)
            .ok_or_else(|| SimError::Config(format!("no organisation {eui} in the test PKI")))?;
        let key = |c: &ecos_smki::testpki::Credential| -> Result<Arc<dyn Signer>, SimError> {
            Ok(Arc::new(c.signer().map_err(|e| {
                SimError::Key(format!("{}: {e}", c.label()))
            })?))
        };
        Ok(SupplierOrg {
            eui,
            xml_sign: key(&o.xml_sign)?,
            xml_sign_cert: o.xml_sign.cert.clone(),
            ds: Some(key(&o.ds)?),
            credentials: SupplierCredentials {
                ds: o.ds.cert.clone(),
                ka: o.ka.cert.clone(),
                pp_ka: Some(o.pp_ka.cert.clone()),
                path: vec![pki.issuing_ca().cert.clone()],
            },
        })
    }
}

/// The XML Sign certificate of organisation `eui` as the test PKI of
/// `spec` would have issued it in 2015 for one year: same keys (they derive
/// from the seed and label, not the dates), same issuer key and names, long
/// expired. For [`Defect::ExpiredCertificate`].
pub fn expired_xml_sign(spec: &TestPkiSpec, eui: Eui64) -> Result<Certificate, SimError> {
    let mut old = spec.clone();
    old.not_before =
        Timestamp::from_second(1_420_070_400).map_err(|e| SimError::Config(e.to_string()))?; // 2015-01-01
    old.org_years = 1;
    let pki = TestPki::generate(&old).map_err(|e| SimError::Config(e.to_string()))?;
    let o = pki
        .organisation(eui)
        .ok_or_else(|| SimError::Config(format!("no organisation {eui} in the test PKI")))?;
    Ok(o.xml_sign.cert.clone())
}

/// What to get wrong on purpose.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Defect {
    /// A correct request.
    #[default]
    None,
    /// `ImportMPxN` is not the device's MPxN (check A).
    WrongMpxn(String),
    /// Sent entirely as another organisation (its RequestID, signature and
    /// certificates): its MPIDs are not the registered supplier (check B).
    WrongMpid(Box<SupplierOrg>),
    /// Signed with the organisation's supplier DS key and certificate
    /// (`OU=02`) instead of its XML Sign one.
    WrongRole,
    /// Signed with the XML Sign key but presenting this expired certificate.
    ExpiredCertificate(Box<Certificate>),
}

/// One 6.23 to build.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The target device.
    pub device: Eui64,
    /// RequestID counter.
    pub counter: u64,
    /// `ImportMPxN`.
    pub mpxn: String,
    /// Immediate, future-dated or cancellation.
    pub execution: Execution,
    /// `ApplyTimeBasedCPVChecks`.
    pub apply_time_based_cpv_checks: bool,
    /// `CommandVariant` (1..=3 for 6.23).
    pub command_variant: u8,
}

/// Build and sign a 6.23 as `org`, with `defect`.
pub fn signed_request(
    org: &SupplierOrg,
    spec: &RequestSpec,
    defect: &Defect,
) -> Result<Vec<u8>, SimError> {
    let (org, mpxn) = match defect {
        Defect::WrongMpid(other) => (other.as_ref(), spec.mpxn.clone()),
        Defect::WrongMpxn(m) => (org, m.clone()),
        _ => (org, spec.mpxn.clone()),
    };
    let c = &org.credentials;
    let req = CosRequest {
        schema_version: "5.4".into(),
        header: RequestHeader {
            request_id: RequestId::new(org.eui, spec.device, spec.counter),
            first_in_sequence: None,
            preceding_request_id: None,
            command_variant: CommandVariant::new(spec.command_variant).ok_or_else(|| {
                SimError::Config(format!(
                    "CommandVariant {} is not 1..9",
                    spec.command_variant
                ))
            })?,
            service_reference: "6.23".into(),
            service_reference_variant: "6.23".into(),
        },
        body: UpdateSecurityCredentialsCoS {
            execution: spec.execution,
            supplier_floor_seq_number: 0,
            supplier_prepayment_top_up_floor_seq_number: c.pp_ka.as_ref().map(|_| 0),
            replacement_certificates: SupplierReplacementCertificates {
                digital_signing: c.ds.clone(),
                key_agreement: Some(c.ka.clone()),
                key_agreement_top_up: c.pp_ka.clone(),
            },
            certification_path: c.path.clone(),
            apply_time_based_cpv_checks: spec.apply_time_based_cpv_checks,
            import_mpxn: mpxn,
        },
    };
    let unsigned = ecos_duis::cos_request(&req).map_err(|e| SimError::Encode(e.to_string()))?;
    let (signer, cert): (&dyn Signer, &Certificate) = match defect {
        Defect::WrongRole => (
            org.ds.as_deref().ok_or_else(|| {
                SimError::Config("no supplier DS key for a wrong-role request".into())
            })?,
            &c.ds,
        ),
        Defect::ExpiredCertificate(old) => (org.xml_sign.as_ref(), old.as_ref()),
        _ => (org.xml_sign.as_ref(), &org.xml_sign_cert),
    };
    ecos_xmldsig::sign(
        &unsigned,
        signer,
        &cert.issuer_rfc2253(),
        &cert.serial_decimal(),
    )
    .map_err(|e| SimError::Encode(format!("XML signature: {e}")))
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// Content type, if any.
    pub content_type: Option<String>,
    /// The body (a DUIS acknowledgement or response).
    pub body: Vec<u8>,
}

/// Submits DUIS requests over HTTP.
#[derive(Debug, Clone)]
pub struct SupplierClient {
    http: reqwest::Client,
    url: String,
}

impl SupplierClient {
    /// A client for the ecos at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Result<SupplierClient, SimError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| SimError::Config(format!("HTTP client: {e}")))?;
        Ok(SupplierClient {
            http,
            url: format!("{}/api/v1/serviceS", base.trim_end_matches('/')),
        })
    }

    /// POST a signed request; the synchronous answer.
    pub async fn submit(&self, signed: Vec<u8>) -> Result<HttpAnswer, SimError> {
        let r = self
            .http
            .post(&self.url)
            .header("content-type", "application/xml")
            .body(signed)
            .send()
            .await
            .map_err(|e| SimError::Io {
                path: self.url.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.bytes().await.map_err(|e| SimError::Io {
            path: self.url.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(HttpAnswer {
            status,
            content_type,
            body: body.to_vec(),
        })
    }
}
