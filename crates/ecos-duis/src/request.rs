//! The typed DUIS request: header of any Service Request, body of 6.23.

use ecos_smki::Certificate;
use jiff::Timestamp;

use crate::enums;
use crate::error::{DuisError, ValueError, clip};
use crate::ids::RequestId;
use crate::values;
use crate::xml::{self, El, Limits, NS_DS, NS_SR, NS_XSI, Seq, XAttr, XNode};
use ecos_xmldsig::SignedTree;

/// The largest floor sequence number (`sr:floorSequenceNumber`, 2^63-1).
pub const MAX_FLOOR_SEQ_NUMBER: u64 = i64::MAX as u64;

/// The ExecutionDateTime that means "cancel the pending future-dated 6.23".
pub const CANCELLATION_SENTINEL: &str = "3000-12-31T00:00:00Z";

/// `sr:CommandVariant` (1..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandVariant(u8);

impl CommandVariant {
    /// A CommandVariant in 1..=9.
    pub fn new(v: u8) -> Option<Self> {
        (1..=9).contains(&v).then_some(CommandVariant(v))
    }
    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
    /// Whether the XSD comment allows it for 6.23 (1, 2 or 3); others map to E12.
    pub fn allowed_for_6_23(self) -> bool {
        (1..=3).contains(&self.0)
    }
}

/// The header of any DUIS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    /// `RequestID`.
    pub request_id: RequestId,
    /// `FirstInSequence`, if present.
    pub first_in_sequence: Option<bool>,
    /// `PrecedingServiceRequestID`, if present.
    pub preceding_request_id: Option<RequestId>,
    /// `CommandVariant`.
    pub command_variant: CommandVariant,
    /// `ServiceReference` (an XSD 5.4 enumeration value, e.g. `6.23`).
    pub service_reference: String,
    /// `ServiceReferenceVariant` (an XSD 5.4 enumeration value, e.g. `6.23`).
    pub service_reference_variant: String,
}

/// When the 6.23 is to be executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// No ExecutionDateTime: on demand.
    Immediate,
    /// A future-dated execution at this instant.
    FutureDated(Timestamp),
    /// The sentinel 3000-12-31T00:00:00Z: cancel the pending future-dated request.
    Cancellation,
}

/// `SupplierReplacementCertificates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierReplacementCertificates {
    /// `DigitalSigningCertificate` (target cell {2, DS}), parsed by `ecos-smki`.
    pub digital_signing: Certificate,
    /// `KeyAgreementCertificate` (target cell {2, KA}).
    pub key_agreement: Option<Certificate>,
    /// `KeyAgreementTopUpCertificate` (target cell {2, KA, prepayment top-up}).
    pub key_agreement_top_up: Option<Certificate>,
}

/// The body `sr:UpdateSecurityCredentialsCoS` of Service Request 6.23.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSecurityCredentialsCoS {
    /// From `ExecutionDateTime`.
    pub execution: Execution,
    /// `SupplierFloorSeqNumber` (≤ 2^63-1).
    pub supplier_floor_seq_number: u64,
    /// `SupplierPrepaymentTopUpFloorSeqNumber` (≤ 2^63-1).
    pub supplier_prepayment_top_up_floor_seq_number: Option<u64>,
    /// `SupplierReplacementCertificates`.
    pub replacement_certificates: SupplierReplacementCertificates,
    /// `CertificationPathCertificates/Certificate`, 1 to 3.
    pub certification_path: Vec<Certificate>,
    /// `ApplyTimeBasedCPVChecks`.
    pub apply_time_based_cpv_checks: bool,
    /// `ImportMPxN` (1 to 13 characters, not otherwise checked here).
    pub import_mpxn: String,
}

/// A 6.23 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosRequest {
    /// The root's `schemaVersion` (an xs:decimal, e.g. `5.4`).
    pub schema_version: String,
    /// The header.
    pub header: RequestHeader,
    /// The body.
    pub body: UpdateSecurityCredentialsCoS,
}

/// A DUIS request as read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DuisRequest {
    /// Service Request 6.23, fully typed.
    UpdateSecurityCredentialsCoS(Box<CosRequest>),
    /// Any other Service Request: header read (enough to answer), body not interpreted.
    Other {
        /// The root's `schemaVersion`.
        schema_version: String,
        /// The header.
        header: RequestHeader,
        /// Local name of the body element, e.g. `ReadInventory`.
        body_element: String,
    },
}

impl DuisRequest {
    /// The header, whatever the Service Request.
    pub fn header(&self) -> &RequestHeader {
        match self {
            DuisRequest::UpdateSecurityCredentialsCoS(r) => &r.header,
            DuisRequest::Other { header, .. } => header,
        }
    }
}

const REQUEST_CHILDREN: &[&str] = &["Header", "Body"];
const HEADER_CHILDREN: &[&str] = &[
    "RequestID",
    "FirstInSequence",
    "PrecedingServiceRequestID",
    "CommandVariant",
    "ServiceReference",
    "ServiceReferenceVariant",
];
const COS_CHILDREN: &[&str] = &[
    "ExecutionDateTime",
    "SupplierFloorSeqNumber",
    "SupplierPrepaymentTopUpFloorSeqNumber",
    "SupplierReplacementCertificates",
    "CertificationPathCertificates",
    "ApplyTimeBasedCPVChecks",
    "ImportMPxN",
];
const REPLACEMENT_CHILDREN: &[&str] = &[
    "DigitalSigningCertificate",
    "KeyAgreementCertificate",
    "KeyAgreementTopUpCertificate",
];
const PATH_CHILDREN: &[&str] = &["Certificate"];

fn invalid(el: &El<'_, '_>, value: &str, reason: ValueError) -> DuisError {
    DuisError::InvalidValue {
        path: el.path(),
        value: clip(value),
        reason,
    }
}

/// Read a DUIS request: the full 6.23 body, or only the header of any other.
///
/// A `ds:Signature` after the body is allowed and ignored (verification is
/// `ecos-xmldsig`'s job, before this reader is called).
pub fn read_request(bytes: &[u8], limits: &Limits) -> Result<DuisRequest, DuisError> {
    let doc = xml::parse(bytes, limits)?;
    read_document(&doc)
}

/// Read a request from a document already parsed by a hardened parser (e.g.
/// the one `ecos-xmldsig` verified), so the bytes are not parsed twice.
///
/// The depth, attribute and value caps of `limits` are checked again here;
/// size, DOCTYPE refusal and the node cap are the caller's parser's job.
pub fn read_parsed(
    doc: &roxmltree::Document<'_>,
    limits: &Limits,
) -> Result<DuisRequest, DuisError> {
    xml::check_shape(doc, limits)?;
    read_document(doc)
}

/// Read the signed content of a verified document: what [`read_request`]
/// over `signed_xml` returns, without parsing it again when the verifier's
/// tree is offered.
///
/// `tree` is the verifier's parsed document (its roxmltree tree, or the
/// flat table of its fast path) and its `ds:Signature` element, offered
/// only when the tree less that subtree shows exactly the content of
/// `signed_xml` (no comments, strict canonical form: see
/// `ecos_xmldsig::SignedContent`). Every cap of `limits` applies as it would
/// to `signed_xml`; where the tree cannot show that (more nodes than the
/// cap), `signed_xml` is parsed instead.
pub fn read_signed(
    signed_xml: &[u8],
    tree: Option<SignedTree<'_, '_>>,
    limits: &Limits,
) -> Result<DuisRequest, DuisError> {
    let (doc, signature) = match tree {
        None => return read_request(signed_xml, limits),
        Some(SignedTree::Flat(doc, signature)) => {
            return read_flat(signed_xml, doc, signature, limits);
        }
        Some(SignedTree::Roxml(doc, signature)) => (doc, signature),
    };
    if signed_xml.len() > limits.max_bytes {
        return Err(DuisError::TooLarge {
            size: signed_xml.len(),
            limit: limits.max_bytes,
        });
    }
    // Parsing `signed_xml` makes no more nodes than the tree holds (the
    // signature gone, no comments, adjacent text joined), so a tree within
    // the cap means the parse would be too; otherwise parse to be exact.
    if xml::node_count(doc) > limits.max_nodes as usize {
        return read_request(signed_xml, limits);
    }
    if signature_is_not_a_root_child(doc, signature) {
        return read_request(signed_xml, limits);
    }
    xml::check_shape_excluding(doc, Some(signature), limits)?;
    let root = XNode::Roxml(doc.root_element());
    let skip = doc.get_node(signature).map(XNode::Roxml);
    read_document_without(El::root_without(root, skip))
}

/// [`read_signed`] over the flat table of the verifier's fast path. Where
/// a cap of `limits` might be reached, and for every error (so that errors
/// are exactly [`read_request`]'s), `signed_xml` is read instead: the
/// table gives the request only when reading it is unremarkable.
fn read_flat(
    signed_xml: &[u8],
    doc: &ecos_xmldsig::flat::Document<'_>,
    signature: ecos_xmldsig::flat::NodeId,
    limits: &Limits,
) -> Result<DuisRequest, DuisError> {
    let root = doc.root_element();
    let sig = doc.get_node(signature);
    let within = signed_xml.len() <= limits.max_bytes
        && signed_xml.len() <= limits.max_value_len
        && doc.node_count() + doc.attribute_count() + 2 <= limits.max_nodes as usize
        && sig.is_some_and(|s| s.parent() == Some(root))
        // depth and attribute caps over the whole table (signature
        // included, so at least as strict as over the signed content)
        && doc.max_depth() <= limits.max_depth
        && doc.max_attributes() <= limits.max_attributes;
    if !within {
        return read_request(signed_xml, limits);
    }
    let el = El::root_without(XNode::Flat(root), sig.map(XNode::Flat));
    read_document_without(el).or_else(|_| read_request(signed_xml, limits))
}

fn signature_is_not_a_root_child(
    doc: &roxmltree::Document<'_>,
    signature: roxmltree::NodeId,
) -> bool {
    doc.get_node(signature)
        .and_then(|n| n.parent())
        .is_none_or(|p| p != doc.root_element())
}

fn read_document(doc: &roxmltree::Document<'_>) -> Result<DuisRequest, DuisError> {
    read_document_without(El::root(XNode::Roxml(doc.root_element())))
}

fn read_document_without(root: El<'_, '_>) -> Result<DuisRequest, DuisError> {
    let (schema_version, header, body) = read_envelope(root)?;
    let name = body.node.local_name();
    if name == "UpdateSecurityCredentialsCoS" {
        let body = read_cos_body(&body)?;
        Ok(DuisRequest::UpdateSecurityCredentialsCoS(Box::new(
            CosRequest {
                schema_version,
                header,
                body,
            },
        )))
    } else {
        Ok(DuisRequest::Other {
            schema_version,
            header,
            body_element: name.to_string(),
        })
    }
}

/// Read only the header (for answering a request whose body is rejected).
pub fn read_request_header(bytes: &[u8], limits: &Limits) -> Result<RequestHeader, DuisError> {
    let doc = xml::parse(bytes, limits)?;
    let root = El::root(XNode::Roxml(doc.root_element()));
    check_root(&root)?;
    let mut seq = Seq::new(&root, NS_SR, REQUEST_CHILDREN)?;
    read_header(&seq.required("Header")?)
}

fn check_root(root: &El<'_, '_>) -> Result<String, DuisError> {
    if !root.is(NS_SR, "Request") {
        return Err(DuisError::WrongRoot {
            found: root.node.expanded(),
            expected: "{http://www.dccinterface.co.uk/ServiceUserGateway}Request",
        });
    }
    let attrs = root.node.attributes();
    let is_version = |a: &XAttr<'_>| a.namespace.is_none() && a.name == "schemaVersion";
    let allowed = |a: &XAttr<'_>| {
        is_version(a) || (a.namespace == Some(NS_XSI) && a.name == "schemaLocation")
    };
    // The unexpected attribute named is the first in canonical order, not
    // document order: the same over a signed document's tree as over its
    // canonical bytes.
    if let Some(a) = attrs
        .iter()
        .filter(|a| !allowed(a))
        .min_by_key(|a| a.canonical_key())
    {
        return Err(DuisError::UnexpectedAttribute {
            path: root.path(),
            name: a.expanded(),
        });
    }
    let version = attrs.iter().find(|a| is_version(a)).map(|a| a.value);
    let v = version.ok_or_else(|| DuisError::MissingAttribute {
        path: root.path(),
        name: "schemaVersion",
    })?;
    values::decimal(v)
        .map(str::to_string)
        .map_err(|reason| DuisError::InvalidValue {
            path: format!("{}/@schemaVersion", root.path()),
            value: clip(v),
            reason,
        })
}

/// Root, header, body choice and trailing signature.
fn read_envelope<'a, 'i: 'a>(
    root: El<'a, 'i>,
) -> Result<(String, RequestHeader, El<'a, 'i>), DuisError> {
    let schema_version = check_root(&root)?;
    let mut seq = Seq::new(&root, NS_SR, REQUEST_CHILDREN)?;
    let header_el = seq.required("Header")?;
    let body_el = seq.required("Body")?;
    // optional ds:Signature, last; its content is the verifier's business
    let children = seq.elements();
    if let Some(extra) = children.get(2) {
        if !extra.is(NS_DS, "Signature") {
            return Err(DuisError::UnexpectedElement {
                path: extra.path(),
                found: extra.node.expanded(),
                expected: "ds:Signature or end of Request".to_string(),
            });
        }
        if let Some(more) = children.get(3) {
            return Err(if more.is(NS_DS, "Signature") {
                DuisError::DuplicateElement {
                    path: more.path(),
                    max: 1,
                }
            } else {
                DuisError::UnexpectedElement {
                    path: more.path(),
                    found: more.node.expanded(),
                    expected: "end of Request".to_string(),
                }
            });
        }
    }
    let header = read_header(&header_el)?;
    body_el.no_attributes()?;
    let mut bseq = Seq::new(&body_el, NS_SR, &[])?;
    let body = bseq.any("a Service Request body element")?;
    if body.node.namespace() != Some(NS_SR) {
        return Err(DuisError::UnexpectedElement {
            path: body.path(),
            found: body.node.expanded(),
            expected: "a Service Request body element".to_string(),
        });
    }
    if let Err(e) = bseq.finish() {
        // a second body element: the body is a choice of exactly one
        return Err(match e {
            DuisError::UnexpectedElement { path, .. } => {
                DuisError::DuplicateElement { path, max: 1 }
            }
            other => other,
        });
    }
    let is_cos_body = body.node.local_name() == "UpdateSecurityCredentialsCoS";
    let is_cos_header = header.service_reference == "6.23";
    if is_cos_body != is_cos_header {
        return Err(DuisError::ServiceMismatch {
            path: body.path(),
            detail: format!(
                "body element {} does not match ServiceReference {}",
                body.node.local_name(),
                header.service_reference
            ),
        });
    }
    Ok((schema_version, header, body))
}

fn read_header(el: &El<'_, '_>) -> Result<RequestHeader, DuisError> {
    el.no_attributes()?;
    let mut seq = Seq::new(el, NS_SR, HEADER_CHILDREN)?;
    let rid = seq.required("RequestID")?;
    let request_id = read_request_id(&rid)?;
    let first_in_sequence = match seq.optional("FirstInSequence") {
        Some(e) => {
            let t = e.simple_text()?;
            Some(values::boolean(t).map_err(|r| invalid(&e, t, r))?)
        }
        None => None,
    };
    let preceding_request_id = match seq.optional("PrecedingServiceRequestID") {
        Some(e) => Some(read_request_id(&e)?),
        None => None,
    };
    let cv = seq.required("CommandVariant")?;
    let t = cv.simple_text()?;
    let n = values::non_negative(t, 9).map_err(|r| invalid(&cv, t, r))?;
    let command_variant = u8::try_from(n)
        .ok()
        .and_then(CommandVariant::new)
        .ok_or_else(|| invalid(&cv, t, ValueError::NotInEnumeration { allowed: "1 to 9" }))?;
    let sr = seq.required("ServiceReference")?;
    let service_reference = sr.simple_text()?;
    if !enums::is_service_reference(service_reference) {
        return Err(invalid(
            &sr,
            service_reference,
            ValueError::NotInEnumeration {
                allowed: "the DUIS 5.4 Service References",
            },
        ));
    }
    let srv = seq.required("ServiceReferenceVariant")?;
    let variant = srv.simple_text()?;
    if !enums::is_service_reference_variant(variant) {
        return Err(invalid(
            &srv,
            variant,
            ValueError::NotInEnumeration {
                allowed: "the DUIS 5.4 Service Reference Variants",
            },
        ));
    }
    if !variant_belongs_to(variant, service_reference) {
        return Err(DuisError::ServiceMismatch {
            path: srv.path(),
            detail: format!(
                "ServiceReferenceVariant {variant} is not a variant of ServiceReference {service_reference}"
            ),
        });
    }
    seq.finish()?;
    Ok(RequestHeader {
        request_id,
        first_in_sequence,
        preceding_request_id,
        command_variant,
        service_reference: service_reference.to_string(),
        service_reference_variant: variant.to_string(),
    })
}

/// `6.15.1` belongs to `6.15`, `6.23` to `6.23`.
pub(crate) fn variant_belongs_to(variant: &str, reference: &str) -> bool {
    variant == reference
        || variant
            .strip_prefix(reference)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn read_request_id(el: &El<'_, '_>) -> Result<RequestId, DuisError> {
    let t = el.simple_text()?;
    RequestId::parse_token(t).map_err(|source| DuisError::RequestId {
        path: el.path(),
        source,
    })
}

/// Certificates parsed from request text, keyed by the exact base64 text:
/// the same supplier certificates arrive in every 6.23. Parsing is a pure
/// function of the text, so a hit returns what a parse would.
static CERTIFICATES: std::sync::LazyLock<ecos_smki::CertCache> =
    std::sync::LazyLock::new(|| ecos_smki::CertCache::new(CERTIFICATE_CACHE_CAPACITY));

/// How many distinct certificates the reader keeps parsed.
pub const CERTIFICATE_CACHE_CAPACITY: usize = 2048;

/// Hits and misses of the reader's certificate cache.
pub fn certificate_cache_stats() -> ecos_smki::CacheStats {
    CERTIFICATES.stats()
}

/// A base64 DER certificate, parsed and profile-checked by `ecos-smki`
/// (once per distinct text, see [`CERTIFICATES`]).
fn certificate(el: &El<'_, '_>) -> Result<Certificate, DuisError> {
    let t = el.simple_text()?;
    let mut bad_base64 = None;
    CERTIFICATES
        .get_or_parse(t.as_bytes(), || {
            let der = values::base64(t).map_err(|r| {
                bad_base64 = Some(r);
                ecos_smki::CertError::Der(String::new())
            })?;
            Certificate::from_der(&der)
        })
        .map_err(|e| match bad_base64.take() {
            Some(r) => invalid(el, t, r),
            None => invalid(el, t, ValueError::Certificate(e.to_string())),
        })
}

fn read_cos_body(el: &El<'_, '_>) -> Result<UpdateSecurityCredentialsCoS, DuisError> {
    el.no_attributes()?;
    let mut seq = Seq::new(el, NS_SR, COS_CHILDREN)?;
    let execution = match seq.optional("ExecutionDateTime") {
        None => Execution::Immediate,
        Some(e) => {
            let t = e.simple_text()?;
            let ts = values::datetime_utc(t).map_err(|r| invalid(&e, t, r))?;
            if ts == cancellation_sentinel() {
                Execution::Cancellation
            } else {
                Execution::FutureDated(ts)
            }
        }
    };
    let floor = |e: &El<'_, '_>| -> Result<u64, DuisError> {
        let t = e.simple_text()?;
        values::non_negative(t, MAX_FLOOR_SEQ_NUMBER).map_err(|r| invalid(e, t, r))
    };
    let supplier_floor_seq_number = floor(&seq.required("SupplierFloorSeqNumber")?)?;
    let supplier_prepayment_top_up_floor_seq_number =
        match seq.optional("SupplierPrepaymentTopUpFloorSeqNumber") {
            Some(e) => Some(floor(&e)?),
            None => None,
        };
    let rc = seq.required("SupplierReplacementCertificates")?;
    rc.no_attributes()?;
    let mut rseq = Seq::new(&rc, NS_SR, REPLACEMENT_CHILDREN)?;
    let digital_signing = certificate(&rseq.required("DigitalSigningCertificate")?)?;
    let key_agreement = match rseq.optional("KeyAgreementCertificate") {
        Some(e) => Some(certificate(&e)?),
        None => None,
    };
    let key_agreement_top_up = match rseq.optional("KeyAgreementTopUpCertificate") {
        Some(e) => Some(certificate(&e)?),
        None => None,
    };
    rseq.finish()?;
    let cp = seq.required("CertificationPathCertificates")?;
    cp.no_attributes()?;
    let mut pseq = Seq::new(&cp, NS_SR, PATH_CHILDREN)?;
    let certification_path = pseq
        .repeated("Certificate", 1, 3)?
        .iter()
        .map(certificate)
        .collect::<Result<Vec<_>, _>>()?;
    pseq.finish()?;
    let cpv = seq.required("ApplyTimeBasedCPVChecks")?;
    let t = cpv.simple_text()?;
    let apply_time_based_cpv_checks = values::boolean(t).map_err(|r| invalid(&cpv, t, r))?;
    let mp = seq.required("ImportMPxN")?;
    // xs:string: whitespace is preserved and counts
    let import_mpxn = mp.simple_text()?;
    let len = values::char_len(import_mpxn);
    if !(1..=13).contains(&len) {
        return Err(invalid(
            &mp,
            import_mpxn,
            ValueError::Length {
                len,
                min: 1,
                max: 13,
            },
        ));
    }
    seq.finish()?;
    Ok(UpdateSecurityCredentialsCoS {
        execution,
        supplier_floor_seq_number,
        supplier_prepayment_top_up_floor_seq_number,
        replacement_certificates: SupplierReplacementCertificates {
            digital_signing,
            key_agreement,
            key_agreement_top_up,
        },
        certification_path,
        apply_time_based_cpv_checks,
        import_mpxn: import_mpxn.to_string(),
    })
}

/// The cancellation sentinel as an instant.
pub fn cancellation_sentinel() -> Timestamp {
    // 3000-12-31T00:00:00Z
    Timestamp::from_second(32_535_129_600).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::{SERVICE_REFERENCE_VARIANTS, SERVICE_REFERENCES};

    #[test]
    fn sentinel_constant_matches() {
        assert_eq!(cancellation_sentinel().to_string(), CANCELLATION_SENTINEL);
    }

    #[test]
    fn every_variant_belongs_to_a_reference() {
        for v in SERVICE_REFERENCE_VARIANTS {
            assert!(
                SERVICE_REFERENCES.iter().any(|r| variant_belongs_to(v, r)),
                "{v}"
            );
        }
        assert!(variant_belongs_to("6.15.1", "6.15"));
        assert!(!variant_belongs_to("6.150", "6.15"));
        assert!(!variant_belongs_to("6.23", "6.2"));
    }
}
