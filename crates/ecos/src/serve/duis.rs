//! The little DUIS the HTTP layer speaks itself: error acknowledgements for
//! requests it refuses before the pipeline sees them, and reading the
//! response code of the pipeline's answer (for metrics).

/// The ServiceUserGateway namespace.
pub const SR_NS: &str = "http://www.dccinterface.co.uk/ServiceUserGateway";

/// What could be read from a request the HTTP layer refuses: echoed in the
/// error acknowledgement when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestEcho {
    /// `sr:RequestID`.
    pub request_id: Option<String>,
    /// `sr:ServiceReference`.
    pub service_reference: Option<String>,
    /// `sr:ServiceReferenceVariant`.
    pub service_reference_variant: Option<String>,
}

impl RequestEcho {
    /// Read the header fields of a request, if it is well-formed XML with a
    /// DUIS header. Never fails: anything unreadable is left out.
    pub fn read(body: &[u8]) -> RequestEcho {
        let mut echo = RequestEcho::default();
        let Ok(text) = std::str::from_utf8(body) else {
            return echo;
        };
        let opts = roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: 100_000,
            ..roxmltree::ParsingOptions::default()
        };
        let Ok(doc) = roxmltree::Document::parse_with_options(text, opts) else {
            return echo;
        };
        let header = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name((SR_NS, "Header")));
        if let Some(h) = header {
            let field = |name: &str| {
                h.children()
                    .find(|n| n.has_tag_name((SR_NS, name)))
                    .and_then(|n| n.text())
                    .map(|t| t.trim().to_string())
                    .filter(|t| is_plain(t))
            };
            echo.request_id = field("RequestID");
            echo.service_reference = field("ServiceReference");
            echo.service_reference_variant = field("ServiceReferenceVariant");
        }
        echo
    }
}

/// Characters allowed in an echoed header field (RequestIDs and service
/// references are hex, digits, hyphens, colons and dots).
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':' | b'.'))
}

/// An unsigned synchronous error acknowledgement, shaped like the DCC Boxed
/// E65 sample: `sr:Response` with RequestID (when known), ResponseCode and
/// ResponseDateTime, and a ResponseMessage naming the service reference when
/// it is known. `code` must be a plain response code such as `E100`.
pub fn error_acknowledgement(code: &str, echo: &RequestEcho, at: jiff::Timestamp) -> Vec<u8> {
    let mut x = String::with_capacity(512);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<sr:Response xmlns:sr=\"");
    x.push_str(SR_NS);
    x.push_str("\" schemaVersion=\"5.4\"><sr:Header>");
    if let Some(id) = &echo.request_id {
        x.push_str("<sr:RequestID>");
        x.push_str(id);
        x.push_str("</sr:RequestID>");
    }
    x.push_str("<sr:ResponseCode>");
    x.push_str(if is_plain(code) { code } else { "E100" });
    x.push_str("</sr:ResponseCode><sr:ResponseDateTime>");
    x.push_str(&at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    x.push_str("</sr:ResponseDateTime></sr:Header>");
    if let Some(sr) = &echo.service_reference {
        let variant = echo.service_reference_variant.as_ref().unwrap_or(sr);
        x.push_str("<sr:Body><sr:ResponseMessage><sr:ServiceReference>");
        x.push_str(sr);
        x.push_str("</sr:ServiceReference><sr:ServiceReferenceVariant>");
        x.push_str(variant);
        x.push_str("</sr:ServiceReferenceVariant></sr:ResponseMessage></sr:Body>");
    }
    x.push_str("</sr:Response>");
    x.into_bytes()
}

/// The `sr:ResponseCode` of a DUIS response, if the document has one that
/// looks like a response code (`I0`, `I99`, `E…`, `W…`).
pub fn response_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100_000,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).ok()?;
    let code = doc
        .descendants()
        .find(|n| n.tag_name().name() == "ResponseCode")?
        .text()?
        .trim();
    let ok = code.len() >= 2
        && code.len() <= 10
        && matches!(code.as_bytes()[0], b'I' | b'E' | b'W')
        && code[1..].bytes().all(|b| b.is_ascii_digit());
    ok.then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_ack_echoes_what_is_known_and_reads_back() {
        let req = br#"<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" schemaVersion="5.4"><sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006</sr:RequestID><sr:CommandVariant>1</sr:CommandVariant><sr:ServiceReference>6.23</sr:ServiceReference><sr:ServiceReferenceVariant>6.23</sr:ServiceReferenceVariant></sr:Header><sr:Body/></sr:Request>"#;
        let echo = RequestEcho::read(req);
        assert_eq!(
            echo.request_id.as_deref(),
            Some("90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A0:1006")
        );
        let at: jiff::Timestamp = "2026-11-29T01:02:03.456Z".parse().unwrap();
        let doc = error_acknowledgement("E100", &echo, at);
        let text = String::from_utf8(doc.clone()).unwrap();
        assert!(
            text.contains("<sr:ResponseDateTime>2026-11-29T01:02:03.456Z<"),
            "{text}"
        );
        assert!(text.contains("<sr:ServiceReferenceVariant>6.23<"), "{text}");
        assert_eq!(response_code(&doc).as_deref(), Some("E100"));
        let back = RequestEcho::read(&doc);
        assert_eq!(back.request_id, echo.request_id);
    }

    #[test]
    fn unreadable_requests_echo_nothing() {
        assert_eq!(RequestEcho::read(b"\xff\xfe"), RequestEcho::default());
        assert_eq!(RequestEcho::read(b"not xml"), RequestEcho::default());
        let xxe = br#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(RequestEcho::read(xxe), RequestEcho::default());
        // Markup smuggled into a header field is not echoed.
        let evil = br#"<sr:Request xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway"><sr:Header><sr:RequestID>a&lt;b</sr:RequestID></sr:Header></sr:Request>"#;
        assert_eq!(RequestEcho::read(evil).request_id, None);
        let doc =
            error_acknowledgement("E1<", &RequestEcho::default(), jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(response_code(&doc).as_deref(), Some("E100"));
        assert!(!String::from_utf8(doc).unwrap().contains("<sr:Body>"));
    }

    #[test]
    fn response_codes() {
        assert_eq!(
            response_code(b"<a><ResponseCode>I99</ResponseCode></a>").as_deref(),
            Some("I99")
        );
        assert_eq!(
            response_code(b"<a><ResponseCode>oops</ResponseCode></a>"),
            None
        );
        assert_eq!(response_code(b"garbage"), None);
    }
}
