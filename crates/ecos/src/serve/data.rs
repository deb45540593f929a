//! The admin API over the store: imports of registration data and inventory
//! (CSV bodies, the same all-or-nothing imports with line-numbered errors as
//! `ecos regdata import` and `ecos inventory import`), look-ups of a device
//! and of an MPxN, requests and their outcomes (paged, filtered), and the
//! audit chain's verification.
//!
//! The routes sit behind the admin bearer token ([`super::admin`]). Without a
//! store in [`super::Parts::store`] they answer 503 with a JSON error.
//!
//! Errors are JSON `{"error": ...}`; a refused import row adds `file` and
//! `line` (the header is line 1) and nothing of the file is applied.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use ecos_smki::Eui64;
use ecos_store::{
    AuditBreak, Device, FileKind, ImportMode, ImportOptions, ImportSummary, RequestCursor,
    RequestFilter, RequestSummary, Store, StoreError, StoredRequest,
};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Routes, json_error};

/// How often `ecos serve` looks for new registration-data or inventory
/// imports (by this API, the CLI or any other importer into its store) to
/// re-validate its pending future-dated 6.23s.
pub const REVALIDATION_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Requests shown with a device, newest first.
pub const DEVICE_REQUESTS: u32 = 20;
/// Requests per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;

/// Register the routes (under the admin auth layer).
pub(crate) fn routes(r: &mut Routes) {
    r.add(
        "post",
        "/api/admin/v1/regdata/import",
        MethodFilter::POST,
        import_regdata,
    );
    r.add(
        "post",
        "/api/admin/v1/inventory/import",
        MethodFilter::POST,
        import_inventory,
    );
    r.add(
        "get",
        "/api/admin/v1/devices/{eui}",
        MethodFilter::GET,
        device,
    );
    r.add("get", "/api/admin/v1/mpxns/{mpxn}", MethodFilter::GET, mpxn);
    r.add("get", "/api/admin/v1/requests", MethodFilter::GET, requests);
    r.add(
        "get",
        "/api/admin/v1/requests/{request_id}",
        MethodFilter::GET,
        request,
    );
    r.add(
        "get",
        "/api/admin/v1/audit/verify",
        MethodFilter::GET,
        audit_verify,
    );
}

fn no_store() -> Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the service runs without a store (start it with a PKI directory: --pki)",
    )
}

/// A store error as an HTTP answer: the caller's mistakes are 4xx with the
/// store's message, the store's own failures 503.
fn store_error(e: StoreError) -> Response {
    match &e {
        StoreError::Row { at, .. } => {
            let body = json!({
                "error": e.to_string(),
                "file": at.file,
                "line": at.line,
                "applied": false,
            });
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        StoreError::NoHeader { file } => {
            let body = json!({
                "error": e.to_string(),
                "file": file,
                "line": 1,
                "applied": false,
            });
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        StoreError::AlreadyImported { .. } | StoreError::Sequence { .. } => {
            json_error(StatusCode::CONFLICT, &e.to_string())
        }
        StoreError::Invalid(_) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        _ => {
            tracing::warn!(error = %e, "admin API: store failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, &format!("store: {e}"))
        }
    }
}

fn bad_query(e: axum::extract::rejection::QueryRejection) -> Response {
    json_error(StatusCode::BAD_REQUEST, &e.body_text())
}

// ------------------------------------------------------------------ imports

/// Query of the import routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// The file's id, kept as provenance; a file id is imported once.
    file_id: String,
    /// `refresh` (default), `update` or `full-refresh`.
    mode: Option<String>,
    /// The data provider.
    source: Option<String>,
    /// The file's sequence number from its provider.
    sequence: Option<u64>,
    /// Full refresh: the first day the file is the whole population.
    as_of: Option<String>,
}

impl ImportQuery {
    fn options(&self, store: &Store) -> Result<ImportOptions, String> {
        let bad = |m: String| m;
        if self.file_id.trim().is_empty() {
            return Err(bad("file_id must not be empty".into()));
        }
        let mode = match &self.mode {
            None => ImportMode::Refresh,
            Some(m) => m.parse().map_err(|e: String| bad(format!("mode: {e}")))?,
        };
        let mut o = ImportOptions::new(self.file_id.trim(), mode);
        o.source = self.source.clone().filter(|s| !s.is_empty());
        o.sequence = self.sequence;
        o.check_digits = store.config().check_digits;
        o.as_of = match &self.as_of {
            None => None,
            Some(d) => Some(
                d.parse::<jiff::civil::Date>()
                    .map_err(|e| bad(format!("as_of {d:?} is not a date (YYYY-MM-DD): {e}")))?,
            ),
        };
        Ok(o)
    }
}

/// Read a CSV body: content type `text/csv` (or `text/plain`), at most `limit` bytes.
async fn csv_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Response> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime != "text/csv" && mime != "text/plain" {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "content type {:?}: send the CSV file as text/csv",
                if mime.is_empty() { "(none)" } else { &mime }
            ),
        ));
    }
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the file is larger than admin.import_body_limit_bytes ({limit} bytes); nothing applied"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b.to_vec()),
        Err(e) => {
            let is_limit = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            Err(if is_limit {
                too_large()
            } else {
                json_error(StatusCode::BAD_REQUEST, "the body could not be read")
            })
        }
    }
}

fn summary_json(s: &ImportSummary) -> Value {
    json!({
        "file_id": s.file_id,
        "kind": s.kind.as_str(),
        "mode": s.mode.as_str(),
        "rows": s.rows,
        "keys": s.keys,
        "written": s.written,
        "removed": s.removed,
        "end_dated": s.end_dated,
        "check_digit_warnings": s.check_digit_warnings,
        "already_imported": s.already_imported,
        "elapsed_ms": s.elapsed.as_millis() as u64,
    })
}

fn imported(s: &ImportSummary) -> Response {
    let mut v = summary_json(s);
    if !s.already_imported && s.kind != FileKind::ServiceUsers {
        v["revalidation"] = json!(format!(
            "pending future-dated 6.23s are re-validated against the new data within {} s",
            REVALIDATION_POLL.as_secs()
        ));
    }
    tracing::info!(
        file_id = %s.file_id,
        kind = s.kind.as_str(),
        rows = s.rows,
        already_imported = s.already_imported,
        "admin API: file imported"
    );
    axum::Json(v).into_response()
}

/// What both import routes need before the store: the store, the options
/// from the query, and the CSV body within its limit, with the file's kind
/// as its header tells it. An early answer where any of them fails.
async fn prepare_import<'a>(
    st: &'a AppState,
    q: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(&'a Store, ImportOptions, Vec<u8>, Option<FileKind>), Response> {
    let Some(store) = st.store.as_ref() else {
        return Err(no_store());
    };
    let Query(q) = q.map_err(bad_query)?;
    let opts = q
        .options(store)
        .map_err(|m| json_error(StatusCode::BAD_REQUEST, &m))?;
    let data = csv_body(headers, body, st.settings.import_body_limit).await?;
    let kind = FileKind::detect(&data);
    Ok((store, opts, data, kind))
}

/// A file posted to the other import route: where it belongs.
fn wrong_route(file_id: &str, what: &str, route: &str) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        &format!("{file_id}: this is a {what} file: POST it to /api/admin/v1/{route}/import"),
    )
}

/// `POST /api/admin/v1/regdata/import?file_id=...`: a registration data file.
async fn import_regdata(
    State(st): State<Arc<AppState>>,
    q: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (store, opts, data, kind) = match prepare_import(&st, q, &headers, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(k @ (FileKind::Inventory | FileKind::ServiceUsers)) = kind {
        return wrong_route(&opts.file_id, k.as_str(), "inventory");
    }
    match store.import_registration(&data, &opts, &mut |_| {}).await {
        Ok(s) => imported(&s),
        Err(e) => store_error(e),
    }
}

/// `POST /api/admin/v1/inventory/import?file_id=...`: an inventory devices
/// file, or a service-users file (told apart by the header).
async fn import_inventory(
    State(st): State<Arc<AppState>>,
    q: Result<Query<ImportQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (store, opts, data, kind) = match prepare_import(&st, q, &headers, body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let r = match kind {
        Some(FileKind::Registration) => {
            return wrong_route(&opts.file_id, "registration data", "regdata");
        }
        Some(FileKind::ServiceUsers) => store.import_service_users(&data, &opts, &mut |_| {}).await,
        _ => store.import_inventory(&data, &opts, &mut |_| {}).await,
    };
    match r {
        Ok(s) => imported(&s),
        Err(e) => store_error(e),
    }
}

// ------------------------------------------------------------------ look-ups

fn opt_ts(t: Option<Timestamp>) -> Value {
    t.map(|t| json!(t.to_string())).unwrap_or(Value::Null)
}

/// A decision reason as JSON when the pipeline wrote JSON, else as text.
fn reason_json(r: &Option<String>) -> Value {
    match r {
        None => Value::Null,
        Some(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
    }
}

fn summary(r: &RequestSummary) -> Value {
    json!({
        "request_id": r.request_id,
        "service_user": r.originator.to_compact(),
        "device": r.device.to_compact(),
        "kind": r.kind.as_str(),
        "state": r.state.as_str(),
        "execution_time": opt_ts(r.execution_time),
        "decision_reason": reason_json(&r.decision_reason),
        "gbcs_counter": r.gbcs_counter,
        "created_at": r.created_at.to_string(),
        "updated_at": r.updated_at.to_string(),
    })
}

fn device_json(d: &Device) -> Value {
    json!({
        "eui": d.eui.to_compact(),
        "device_type": d.device_type.as_str(),
        "status": d.status.as_str(),
        "mpxn": d.mpxn.as_ref().map(|m| m.as_str().to_string()),
        "cos_credential": d.cos_credential.map(|c| c.as_str()),
        "comms_hub": d.comms_hub.map(|h| h.to_compact()),
        "csp_region": d.csp_region,
        "firmware_version": d.firmware_version,
        "last_contact": opt_ts(d.last_contact),
        "ka_cert_der_hex": d.ka_cert.as_ref().map(hex::encode),
        "ds_cert_der_hex": d.ds_cert.as_ref().map(hex::encode),
    })
}

fn registration_json(r: &ecos_store::Registration) -> Value {
    json!({
        "mpid": r.mpid,
        "effective_from": r.effective_from.to_string(),
        "effective_to": r.effective_to.map(|d| d.to_string()),
        "source_file": r.source_file,
        "source_line": r.source_line,
    })
}

/// `GET /api/admin/v1/devices/{eui}`: the inventory record, the registered
/// supplier of its MPxN now, the supplier credentials it reported after a
/// switch, its migration state and its latest requests.
async fn device(State(st): State<Arc<AppState>>, Path(eui): Path<String>) -> Response {
    let Some(store) = st.store.as_ref() else {
        return no_store();
    };
    let Ok(id) = eui.parse::<Eui64>() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("{eui:?} is not an EUI-64 (16 hex digits, hyphens allowed)"),
        );
    };
    let result: Result<Option<Value>, StoreError> = async {
        let Some(d) = store.device(id).await? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        let supplier = match &d.mpxn {
            Some(m) => store.registered_supplier_at(m, now).await?,
            None => None,
        };
        let creds = store.device_supplier_credentials(id).await?;
        let migration = store.migration_record(id).await?;
        let page = store
            .list_requests(
                &RequestFilter {
                    device: Some(id),
                    ..Default::default()
                },
                None,
                DEVICE_REQUESTS,
            )
            .await?;
        Ok(Some(json!({
            "device": device_json(&d),
            "registered_supplier": supplier.as_ref().map(registration_json),
            "as_of_date": store.as_of_date(now).to_string(),
            "supplier_credentials": creds.map(|c| json!({
                "supplier": c.supplier.to_compact(),
                "request_id": c.request_id,
                "updated_at": c.updated_at.to_string(),
                "ds_cert_der_hex": c.ds_cert.as_ref().map(hex::encode),
                "ka_cert_der_hex": c.ka_cert.as_ref().map(hex::encode),
                "ka_top_up_cert_der_hex": c.ka_top_up_cert.as_ref().map(hex::encode),
            })),
            "migration": migration.map(|m| json!({
                "state": m.state.as_str(),
                "attempts": m.attempts,
                "reason": m.reason,
                "failure_class": m.failure_class,
                "next_at": opt_ts(m.next_at),
                "sent_at": opt_ts(m.sent_at),
                "updated_at": m.updated_at.to_string(),
            })),
            "requests": page.items.iter().map(summary).collect::<Vec<_>>(),
            "more_requests": page.next.map(|c| format!(
                "/api/admin/v1/requests?device={}&cursor={}",
                id.to_compact(),
                c.encode()
            )),
        })))
    }
    .await;
    match result {
        Ok(Some(v)) => axum::Json(v).into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            &format!("device {} is not in the inventory", id.to_hyphenated()),
        ),
        Err(e) => store_error(e),
    }
}

/// `GET /api/admin/v1/mpxns/{mpxn}`: the registered supplier now, the
/// registration history with provenance, and the devices at the meter point.
async fn mpxn(State(st): State<Arc<AppState>>, Path(mpxn): Path<String>) -> Response {
    let Some(store) = st.store.as_ref() else {
        return no_store();
    };
    let m = match store.parse_mpxn(&mpxn) {
        Ok(m) => m,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("{mpxn:?} is not an MPAN or MPRN: {e}"),
            );
        }
    };
    let result: Result<Value, StoreError> = async {
        let now = Timestamp::now();
        let history = store.registration_history(&m).await?;
        let devices = store.devices_for_mpxn(&m).await?;
        let supplier = store.registered_supplier_at(&m, now).await?;
        Ok(json!({
            "mpxn": m.as_str(),
            "fuel": m.fuel().as_str(),
            "as_of_date": store.as_of_date(now).to_string(),
            "registered_supplier": supplier.as_ref().map(registration_json),
            "history": history.iter().map(registration_json).collect::<Vec<_>>(),
            "devices": devices.iter().map(device_json).collect::<Vec<_>>(),
        }))
    }
    .await;
    match result {
        Ok(v)
            if v["history"].as_array().is_some_and(|h| h.is_empty())
                && v["devices"].as_array().is_some_and(|d| d.is_empty()) =>
        {
            json_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "MPxN {} has no registration data and no device in the inventory",
                    m.as_str()
                ),
            )
        }
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

// ------------------------------------------------------------------ requests

/// Query of `GET /api/admin/v1/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    state: Option<String>,
    service_user: Option<String>,
    device: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

impl RequestsQuery {
    fn filter(&self) -> Result<(RequestFilter, Option<RequestCursor>, u32), String> {
        let eui = |name: &str, v: &Option<String>| -> Result<Option<Eui64>, String> {
            v.as_deref()
                .map(|s| {
                    s.parse::<Eui64>()
                        .map_err(|_| format!("{name} {s:?} is not an EUI-64"))
                })
                .transpose()
        };
        let filter = RequestFilter {
            state: self
                .state
                .as_deref()
                .map(|s| {
                    s.parse().map_err(|_| {
                        format!(
                            "state {s:?}: expected one of received, accepted, rejected, dispatched, \
                             completed, failed, cancelled, superseded"
                        )
                    })
                })
                .transpose()?,
            originator: eui("service_user", &self.service_user)?,
            device: eui("device", &self.device)?,
            kind: self
                .kind
                .as_deref()
                .map(|s| {
                    s.parse().map_err(|_| {
                        format!("kind {s:?}: expected immediate, future-dated or cancellation")
                    })
                })
                .transpose()?,
        };
        let cursor = self
            .cursor
            .as_deref()
            .map(|c| RequestCursor::decode(c).map_err(|e| format!("cursor: {e}")))
            .transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > ecos_store::query::MAX_PAGE {
            return Err(format!(
                "limit {limit}: a page holds 1 to {}",
                ecos_store::query::MAX_PAGE
            ));
        }
        Ok((filter, cursor, limit))
    }
}

/// `GET /api/admin/v1/requests`: requests and their outcomes, newest first,
/// filtered by state, service user, device and kind; `next_cursor` pages on.
async fn requests(
    State(st): State<Arc<AppState>>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(store) = st.store.as_ref() else {
        return no_store();
    };
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return bad_query(e),
    };
    let (filter, cursor, limit) = match q.filter() {
        Ok(f) => f,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, &m),
    };
    match store.list_requests(&filter, cursor.as_ref(), limit).await {
        Ok(page) => axum::Json(json!({
            "items": page.items.iter().map(summary).collect::<Vec<_>>(),
            "next_cursor": page.next.map(|c| c.encode()),
        }))
        .into_response(),
        Err(e) => store_error(e),
    }
}

fn request_json(r: &StoredRequest) -> Value {
    json!({
        "request_id": r.request_id,
        "service_user": r.originator.to_compact(),
        "device": r.device.to_compact(),
        "kind": r.kind.as_str(),
        "state": r.state.as_str(),
        "execution_time": opt_ts(r.execution_time),
        "decision_reason": reason_json(&r.decision_reason),
        "gbcs_counter": r.gbcs_counter,
        "created_at": r.created_at.to_string(),
        "updated_at": r.updated_at.to_string(),
        "request_xml": r.request_xml,
        "command_hex": r.command.as_ref().map(hex::encode),
    })
}

/// `GET /api/admin/v1/requests/{request_id}`: one request whole, with the
/// request as received and the GBCS command built for it.
async fn request(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(store) = st.store.as_ref() else {
        return no_store();
    };
    match store.request(&id).await {
        Ok(Some(r)) => axum::Json(request_json(&r)).into_response(),
        Ok(None) => json_error(
            StatusCode::NOT_FOUND,
            &format!(
                "request {id:?} is not in the store (a refusal at the signature, signer or replay \
                 check is only in the audit log: GET /api/admin/v1/report/failures)"
            ),
        ),
        Err(e) => store_error(e),
    }
}

// ------------------------------------------------------------------ audit

fn break_json(b: &AuditBreak) -> Value {
    let (kind, seq) = match b {
        AuditBreak::Gap { expected, .. } => ("gap", *expected),
        AuditBreak::PrevHash { seq } => ("prev_hash", *seq),
        AuditBreak::Hash { seq } => ("hash", *seq),
        AuditBreak::Head { head_seq, .. } => ("head", *head_seq),
        _ => ("other", 0),
    };
    json!({ "kind": kind, "seq": seq, "message": b.to_string() })
}

/// `GET /api/admin/v1/audit/verify`: walk the whole audit chain now and say
/// whether it is intact, or where it first breaks.
async fn audit_verify(State(st): State<Arc<AppState>>) -> Response {
    let Some(store) = st.store.as_ref() else {
        return no_store();
    };
    let t = std::time::Instant::now();
    match store.verify_audit_chain().await {
        Ok(v) => {
            if let Some(b) = &v.first_broken {
                tracing::error!(broken = %b, "admin API: the audit chain is broken");
            }
            axum::Json(json!({
                "intact": v.first_broken.is_none(),
                "entries": v.entries,
                "head": hex::encode(v.head),
                "first_broken": v.first_broken.as_ref().map(break_json),
                "elapsed_ms": t.elapsed().as_millis() as u64,
            }))
            .into_response()
        }
        Err(e) => store_error(e),
    }
}

#[cfg(test)]
mod tests {
    //! Over real HTTP on loopback, against a real SQLite store (and the real
    //! 6.23 pipeline for the request listing).

    use super::*;
    use crate::config::Config;
    use crate::serve::{Parts, ServeError, Server, Settings};
    use ecos_party::ServiceRequestHandler;
    use ecos_party::demo;

    const TOKEN: &str = "data-admin-token-0123456789";

    struct Run {
        base: String,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), ServeError>>,
    }

    impl Run {
        async fn stop(self) {
            let _ = self.stop.send(());
            self.task.await.expect("task").expect("clean stop");
        }
    }

    async fn start(
        store: Store,
        handler: Option<Arc<dyn ServiceRequestHandler>>,
        import_limit: usize,
    ) -> Run {
        let mut c = Config::default();
        c.http.listen = "127.0.0.1:0".parse().expect("address");
        c.admin.token = Some(TOKEN.into());
        c.admin.import_body_limit_bytes = import_limit;
        c.validate().expect("valid configuration");
        let server = Server::bind(
            Settings::from(&c),
            None,
            Parts {
                handler,
                store: Some(store),
                ..Parts::default()
            },
        )
        .await
        .expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Run {
            base,
            stop: tx,
            task,
        }
    }

    async fn sqlite_store(dir: &std::path::Path) -> Store {
        Store::open(
            &ecos_store::StoreLocation::sqlite_in_dir(dir),
            ecos_store::StoreConfig::default(),
        )
        .await
        .expect("store")
    }

    /// An admin client: `get(path)`, `csv(path, body)`, each giving (status, JSON).
    struct Admin {
        c: reqwest::Client,
        base: String,
        token: &'static str,
    }

    impl Admin {
        fn new(base: &str) -> Admin {
            Admin {
                c: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .expect("client"),
                base: base.to_string(),
                token: TOKEN,
            }
        }

        fn with_token(&self, token: &'static str) -> Admin {
            Admin {
                c: self.c.clone(),
                base: self.base.clone(),
                token,
            }
        }

        async fn answer(r: reqwest::RequestBuilder) -> (u16, Value) {
            let resp = r.send().await.expect("HTTP");
            let status = resp.status().as_u16();
            let text = resp.text().await.expect("body");
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
            (status, v)
        }

        async fn get(&self, path: &str) -> (u16, Value) {
            Self::answer(
                self.c
                    .get(format!("{}{path}", self.base))
                    .bearer_auth(self.token),
            )
            .await
        }

        async fn post(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
            Self::answer(
                self.c
                    .post(format!("{}{path}", self.base))
                    .bearer_auth(self.token)
                    .header("content-type", content_type)
                    .body(body.to_string()),
            )
            .await
        }

        async fn csv(&self, path: &str, body: &str) -> (u16, Value) {
            self.post(path, "text/csv", body).await
        }
    }

    const MPAN: &str = "1312345678907";
    const MPAN_NEW: &str = "2000000000015";
    const REGDATA: &str = "mpxn,supplier_mpid,effective_from,effective_to\n\
                           1312345678907,ACEE,1990-01-01,2000-12-31\n\
                           1312345678907,BDEE,2001-01-01,\n\
                           3938424403,ACG,2001-01-01,\n";

    #[tokio::test]
    async fn imports_over_http_are_all_or_nothing_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store(dir.path()).await;
        let run = start(store.clone(), None, 4096).await;
        let a = Admin::new(&run.base);
        let reg = "/api/admin/v1/regdata/import";
        let inv = "/api/admin/v1/inventory/import";

        // A wrong token: refused, nothing applied.
        let (s, v) = a
            .with_token("wrong-admin-token-0123456789")
            .csv(&format!("{reg}?file_id=reg-1"), REGDATA)
            .await;
        assert_eq!(s, 401, "{v}");
        assert_eq!(store.counts().await.expect("counts").registrations, 0);

        // A good file.
        let (s, v) = a.csv(&format!("{reg}?file_id=reg-1"), REGDATA).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            (v["kind"].as_str(), v["rows"].as_u64(), v["keys"].as_u64()),
            (Some("registration"), Some(3), Some(2))
        );
        assert!(v["revalidation"].is_string(), "{v}");
        let (s, m) = a.get(&format!("/api/admin/v1/mpxns/{MPAN}")).await;
        assert_eq!(s, 200, "{m}");
        assert_eq!(m["registered_supplier"]["mpid"], "BDEE");
        assert_eq!(m["history"].as_array().map(Vec::len), Some(2));
        assert_eq!(m["history"][0]["source_file"], "reg-1");
        assert_eq!(m["fuel"], "electricity");

        // A bad line 3: the whole file is refused, with its line, and nothing is applied.
        let bad = format!(
            "mpxn,supplier_mpid,effective_from,effective_to\n\
             {MPAN_NEW},ACEE,2001-01-01,\n\
             {MPAN},ACEE,2001-13-01,\n"
        );
        let (s, v) = a.csv(&format!("{reg}?file_id=reg-2"), &bad).await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(
            (
                v["line"].as_u64(),
                v["file"].as_str(),
                v["applied"].as_bool()
            ),
            (Some(3), Some("reg-2"), Some(false)),
            "{v}"
        );
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("line 3")),
            "{v}"
        );
        let (s, v) = a.get(&format!("/api/admin/v1/mpxns/{MPAN_NEW}")).await;
        assert_eq!(s, 404, "line 2 of the refused file was not applied: {v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("no registration data")),
            "{v}"
        );
        let (_, m2) = a.get(&format!("/api/admin/v1/mpxns/{MPAN}")).await;
        assert_eq!(m2, m, "the MPxN of line 3 is unchanged");

        // The same file again: a no-op; the same id with other content: a conflict.
        let (s, v) = a.csv(&format!("{reg}?file_id=reg-1"), REGDATA).await;
        assert_eq!((s, v["already_imported"].as_bool()), (200, Some(true)));
        let (s, v) = a.csv(&format!("{reg}?file_id=reg-1"), &bad).await;
        assert_eq!(s, 409, "{v}");

        // Over the size limit (4 KiB here): 413, nothing applied.
        let mut big = String::from("mpxn,supplier_mpid,effective_from,effective_to\n");
        big.push_str(&format!("{MPAN_NEW},ACEE,2001-01-01,\n"));
        while big.len() <= 4096 {
            big.push('\n');
        }
        let (s, v) = a.csv(&format!("{reg}?file_id=big"), &big).await;
        assert_eq!(s, 413, "{v}");
        assert_eq!(
            a.get(&format!("/api/admin/v1/mpxns/{MPAN_NEW}")).await.0,
            404
        );

        // Content type, query and kind of file.
        let (s, v) = a
            .post(&format!("{reg}?file_id=json"), "application/json", REGDATA)
            .await;
        assert_eq!(s, 415, "{v}");
        let (s, v) = a.csv(reg, REGDATA).await;
        assert_eq!(s, 400, "file_id is required: {v}");
        let (s, v) = a
            .csv(&format!("{reg}?file_id=m&mode=sideways"), REGDATA)
            .await;
        assert_eq!(s, 400, "{v}");
        let inventory = format!(
            "device_eui,device_type,status,mpxn,cos_credential\n\
             00-DB-12-34-56-78-90-A0,esme,commissioned,{MPAN},transitional\n"
        );
        let (s, v) = a.csv(&format!("{reg}?file_id=inv-1"), &inventory).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(inv)), "{v}");
        let (s, v) = a.csv(&format!("{inv}?file_id=reg-x"), REGDATA).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(reg)), "{v}");

        // Inventory: a good file, then a bad line 3.
        let (s, v) = a.csv(&format!("{inv}?file_id=inv-1"), &inventory).await;
        assert_eq!((s, v["kind"].as_str()), (200, Some("inventory")), "{v}");
        let bad_inv = format!(
            "device_eui,device_type,status,mpxn\n\
             00-DB-12-34-56-78-90-A1,esme,commissioned,{MPAN_NEW}\n\
             00-DB-12-34-56-78-90-A2,esme,broken,{MPAN_NEW}\n"
        );
        let (s, v) = a.csv(&format!("{inv}?file_id=inv-2"), &bad_inv).await;
        assert_eq!((s, v["line"].as_u64()), (422, Some(3)), "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("status")),
            "{v}"
        );
        let (s, v) = a.get("/api/admin/v1/devices/00DB1234567890A1").await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(
            v["error"], "device 00-DB-12-34-56-78-90-A1 is not in the inventory",
            "{v}"
        );
        assert_eq!(store.counts().await.expect("counts").devices, 1);

        // Service users go through the inventory route.
        let users = "org_eui,name,roles,mpids,response_endpoint\n\
                     90-B3-D5-1F-30-03-00-00,Supplier B,IS GS,BDEE BDG,http://127.0.0.1:9/b\n";
        let (s, v) = a.csv(&format!("{inv}?file_id=users-1"), users).await;
        assert_eq!((s, v["kind"].as_str()), (200, Some("service-users")), "{v}");
        assert!(v.get("revalidation").is_none(), "{v}");

        // The device, with the registered supplier of its MPxN now.
        let (s, d) = a.get("/api/admin/v1/devices/00-db-12-34-56-78-90-a0").await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["device"]["eui"], "00DB1234567890A0");
        assert_eq!(d["device"]["mpxn"], MPAN);
        assert_eq!(d["device"]["cos_credential"], "transitional");
        assert_eq!(d["registered_supplier"]["mpid"], "BDEE");
        assert_eq!(d["requests"], json!([]));
        assert_eq!(d["migration"], Value::Null);
        let (s, m) = a.get(&format!("/api/admin/v1/mpxns/{MPAN}")).await;
        assert_eq!(s, 200);
        assert_eq!(m["devices"][0]["eui"], "00DB1234567890A0");
        let (s, v) = a.get("/api/admin/v1/devices/not-an-eui").await;
        assert_eq!(s, 400, "{v}");
        let (s, v) = a.get("/api/admin/v1/mpxns/12ab").await;
        assert_eq!(s, 400, "{v}");
        run.stop().await;
    }

    #[tokio::test]
    async fn every_data_route_needs_the_token_and_a_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sqlite_store(dir.path()).await;
        let run = start(store, None, 4096).await;
        let a = Admin::new(&run.base);
        let gets = [
            "/api/admin/v1/devices/00DB1234567890A0",
            "/api/admin/v1/mpxns/1312345678907",
            "/api/admin/v1/requests",
            "/api/admin/v1/requests/x",
            "/api/admin/v1/audit/verify",
        ];
        for t in ["wrong-admin-token-0123456789", ""] {
            let w = a.with_token(t);
            for p in gets {
                assert_eq!(w.get(p).await.0, 401, "GET {p} with token {t:?}");
            }
            for p in [
                "/api/admin/v1/regdata/import?file_id=a",
                "/api/admin/v1/inventory/import?file_id=a",
            ] {
                assert_eq!(w.csv(p, REGDATA).await.0, 401, "POST {p}");
            }
        }
        run.stop().await;
        // Without a store: 503 with a message.
        let mut c = Config::default();
        c.http.listen = "127.0.0.1:0".parse().expect("address");
        c.admin.token = Some(TOKEN.into());
        let server = Server::bind(Settings::from(&c), None, Parts::default())
            .await
            .expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let a = Admin::new(&base);
        for p in gets {
            let (s, v) = a.get(p).await;
            assert_eq!(s, 503, "GET {p}: {v}");
            assert!(v["error"].as_str().is_some_and(|e| e.contains("store")));
        }
        let _ = tx.send(());
        task.await.expect("task").expect("clean stop");
    }

    #[tokio::test]
    async fn requests_outcomes_devices_and_the_audit_chain_through_the_pipeline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ecos_party::PartyConfig::default();
        let store = Store::open(
            &ecos_store::StoreLocation::sqlite_in_dir(dir.path()),
            ecos_store::StoreConfig {
                gbcs_counter_floor: config.counter_floor,
                ..Default::default()
            },
        )
        .await
        .expect("store");
        let pki = demo::pki(7).expect("PKI");
        let party = Arc::new(demo::party(&pki, store.clone(), config).expect("party"));
        let run = start(store.clone(), Some(party), 1 << 20).await;
        let a = Admin::new(&run.base);
        // The demo's data, through the admin API.
        let (users, regdata, inventory) = demo::data_files(&pki);
        for (path, id, body) in [
            ("/api/admin/v1/inventory/import", "users", &users),
            ("/api/admin/v1/regdata/import", "regdata", &regdata),
            ("/api/admin/v1/inventory/import", "inventory", &inventory),
        ] {
            let (s, v) = a.csv(&format!("{path}?file_id={id}"), body).await;
            assert_eq!(s, 200, "{id}: {v}");
        }
        // Three signed 6.23s: two from the registered supplier (B), one from
        // the previous one (A), which the MPID check refuses.
        let c = reqwest::Client::new();
        let b_esme = demo::RequestSpec::new(demo::SUPPLIER_B, demo::ESME_TCOS, 1, demo::MPAN_1);
        let b_gsme = demo::RequestSpec::new(demo::SUPPLIER_B, demo::GSME_TCOS, 2, demo::MPRN_1);
        let a_esme = demo::RequestSpec::new(demo::SUPPLIER_A, demo::ESME_TCOS, 1, demo::MPAN_1);
        let mut ids = Vec::new();
        for spec in [&b_esme, &a_esme, &b_gsme] {
            let resp = c
                .post(format!("{}/api/v1/serviceS", run.base))
                .header("content-type", "application/xml")
                .body(spec.signed(&pki).expect("signed"))
                .send()
                .await
                .expect("POST");
            assert_eq!(resp.status(), 200);
            ids.push(format!(
                "{}:{}:{}",
                spec.originator.to_hyphenated(),
                spec.device.to_hyphenated(),
                spec.counter
            ));
        }

        // All, newest first; paged one by one.
        let (s, all) = a.get("/api/admin/v1/requests").await;
        assert_eq!(s, 200, "{all}");
        let items = all["items"].as_array().expect("items");
        assert_eq!(items.len(), 3, "{all}");
        assert_eq!(all["next_cursor"], Value::Null);
        let mut paged = Vec::new();
        let mut path = "/api/admin/v1/requests?limit=1".to_string();
        loop {
            let (s, p) = a.get(&path).await;
            assert_eq!(s, 200, "{p}");
            paged.extend(p["items"].as_array().expect("items").iter().cloned());
            match p["next_cursor"].as_str() {
                Some(c) => path = format!("/api/admin/v1/requests?limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(&paged, items);
        // The refusal and its reason.
        let (_, rej) = a.get("/api/admin/v1/requests?state=rejected").await;
        let rej = rej["items"].as_array().expect("items").clone();
        assert_eq!(rej.len(), 1, "{rej:?}");
        assert_eq!(rej[0]["service_user"], demo::SUPPLIER_A.to_compact());
        assert!(
            rej[0]["decision_reason"].is_object(),
            "the pipeline's reason as JSON: {}",
            rej[0]
        );
        let (_, by_a) = a
            .get(&format!(
                "/api/admin/v1/requests?service_user={}",
                demo::SUPPLIER_A.to_hyphenated()
            ))
            .await;
        assert_eq!(by_a["items"], json!(rej));
        let (_, dev) = a
            .get(&format!(
                "/api/admin/v1/requests?device={}&service_user={}",
                demo::ESME_TCOS.to_compact(),
                demo::SUPPLIER_B.to_compact()
            ))
            .await;
        let dev = dev["items"].as_array().expect("items").clone();
        assert_eq!(dev.len(), 1);
        assert_ne!(dev[0]["state"], "rejected", "{}", dev[0]);
        for bad in [
            "state=lost",
            "service_user=nobody",
            "kind=sometime",
            "limit=0",
            "limit=5000",
            "cursor=zzz",
            "colour=red",
        ] {
            let (s, v) = a.get(&format!("/api/admin/v1/requests?{bad}")).await;
            assert_eq!(s, 400, "{bad}: {v}");
            assert!(v["error"].is_string());
        }
        // One request whole.
        let (s, one) = a.get(&format!("/api/admin/v1/requests/{}", ids[0])).await;
        assert_eq!(s, 200, "{one}");
        assert!(
            one["request_xml"]
                .as_str()
                .is_some_and(|x| x.contains("6.23")),
            "{one}"
        );
        assert!(
            one["command_hex"].is_string(),
            "an accepted request has its command: {one}"
        );
        let (s, v) = a
            .get("/api/admin/v1/requests/90B3D51F30010000:00DB1234567890A0:99")
            .await;
        assert_eq!(s, 404, "{v}");
        // The device shows both of its requests.
        let (s, d) = a
            .get(&format!("/api/admin/v1/devices/{}", demo::ESME_TCOS))
            .await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(d["requests"].as_array().map(Vec::len), Some(2), "{d}");
        assert_eq!(d["registered_supplier"]["mpid"], "BDEE");
        assert_eq!(d["more_requests"], Value::Null);

        // The audit chain: intact, then altered behind the store's back.
        let (s, v) = a.get("/api/admin/v1/audit/verify").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["intact"], true, "{v}");
        let entries = v["entries"].as_u64().expect("entries");
        assert!(entries >= 3, "{v}");
        let raw = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            dir.path().join("ecos.db").display()
        ))
        .await
        .expect("raw connection");
        sqlx::query("UPDATE audit_log SET detail = 'forged' WHERE seq = 2")
            .execute(&raw)
            .await
            .expect("tamper");
        raw.close().await;
        let (s, v) = a.get("/api/admin/v1/audit/verify").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["intact"], false, "{v}");
        assert_eq!(v["entries"], 1);
        assert_eq!(v["first_broken"]["kind"], "hash");
        assert_eq!(v["first_broken"]["seq"], 2);
        run.stop().await;
    }
}
