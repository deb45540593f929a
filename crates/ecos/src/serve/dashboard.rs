//! The operations dashboard: a page at `/` whose charts (SVG drawn by its own
//! small script, `dashboard/dashboard.js`) are fed by read-only JSON
//! endpoints under `/api/dashboard/v1/`, and the failure report in the admin
//! API.
//!
//! - The page and its script and style sheet are built into the binary and
//!   served to anyone: they hold no data.
//! - The JSON endpoints answer clients on loopback without login; any other
//!   client needs the admin bearer token, and without a configured token
//!   they answer only loopback (403 otherwise). The page asks for the token
//!   when an endpoint answers 401.
//! - Data come from the store ([`ecos_store::report`]): decisions from the
//!   audit log, device round trips from the requests table, migration from its
//!   state and transition log; HTTP stage latency from this process's
//!   Prometheus histograms; the audit chain is re-verified at most every
//!   [`AUDIT_RECHECK`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use ecos_party::readiness;
use ecos_party::{PartyConfig, SmkiRegistry};
use ecos_smki::{Certificate, MpidRules, Mpids};
use std::fmt::Write as _;

use ecos_store::{FailureExample, FailureReport, Store, Window};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{AppState, Routes, json_error};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// How long a verification of the audit chain is reused.
pub const AUDIT_RECHECK: Duration = Duration::from_secs(15);
/// How long the readiness summary is reused.
pub const READINESS_RECHECK: Duration = Duration::from_secs(60);
/// The most MPxNs the readiness summary examines per service user.
pub const READINESS_MPXN_LIMIT: u32 = 2_000;
/// Examples per group in the failure report, unless asked otherwise.
pub const DEFAULT_EXAMPLES: usize = 3;

/// What the readiness view judges with: the SMKI registry (trust anchors,
/// revocation), the pipeline's policy and the XML Sign certificates held.
pub struct ReadinessInputs {
    smki: SmkiRegistry,
    config: PartyConfig,
    certificates: Vec<Certificate>,
}

impl std::fmt::Debug for ReadinessInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessInputs")
            .field("certificates", &self.certificates.len())
            .finish_non_exhaustive()
    }
}

impl ReadinessInputs {
    /// Judge with `certificates` (service users' XML Sign certificates).
    pub fn new(smki: SmkiRegistry, config: PartyConfig, certificates: Vec<Certificate>) -> Self {
        ReadinessInputs {
            smki,
            config,
            certificates,
        }
    }
}

/// The dashboard's sources and caches.
pub struct Dashboard {
    store: Store,
    readiness: Option<ReadinessInputs>,
    audit: Mutex<Option<(Instant, serde_json::Value)>>,
    ready: Mutex<Option<(Instant, serde_json::Value)>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("backend", &self.store.backend())
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `store` (readiness view empty until inputs are given).
    pub fn new(store: Store) -> Self {
        Dashboard {
            store,
            readiness: None,
            audit: Mutex::new(None),
            ready: Mutex::new(None),
        }
    }

    /// With the readiness view.
    pub fn with_readiness(mut self, inputs: ReadinessInputs) -> Self {
        self.readiness = Some(inputs);
        self
    }

    async fn audit_status(&self) -> Result<serde_json::Value, String> {
        let mut cache = self.audit.lock().await;
        if let Some((at, v)) = cache.as_ref()
            && at.elapsed() < AUDIT_RECHECK
        {
            return Ok(v.clone());
        }
        let v = self
            .store
            .verify_audit_chain()
            .await
            .map_err(|e| e.to_string())?;
        let json = serde_json::json!({
            "entries": v.entries,
            "head": hex::encode(v.head),
            "intact": v.first_broken.is_none(),
            "first_broken": v.first_broken.as_ref().map(|b| b.to_string()),
            "checked_at": Timestamp::now(),
        });
        *cache = Some((Instant::now(), json.clone()));
        Ok(json)
    }

    async fn readiness_summary(&self) -> Result<serde_json::Value, String> {
        let Some(inputs) = &self.readiness else {
            return Ok(serde_json::json!({
                "available": false,
                "why": "the service runs without a PKI directory: no XML Sign certificates to judge with",
                "users": [],
            }));
        };
        let mut cache = self.ready.lock().await;
        if let Some((at, v)) = cache.as_ref()
            && at.elapsed() < READINESS_RECHECK
        {
            return Ok(v.clone());
        }
        let now = Timestamp::now();
        let rules = MpidRules::default();
        let ctx = readiness::Context {
            store: &self.store,
            smki: &inputs.smki,
            config: &inputs.config,
            mpid_rules: &rules,
        };
        let mut users = Vec::new();
        for u in self
            .store
            .service_users()
            .await
            .map_err(|e| e.to_string())?
        {
            let certs: Vec<Certificate> = inputs
                .certificates
                .iter()
                .filter(|c| c.eui() == Some(u.org_eui))
                .cloned()
                .collect();
            let mut entry = serde_json::json!({
                "org": u.org_eui.to_string(),
                "name": u.name,
                "roles": u.roles,
                "certificates": certs.len(),
            });
            if certs.is_empty() {
                entry["error"] = "no XML Sign certificate held for this organisation".into();
                users.push(entry);
                continue;
            }
            let mut mpids: BTreeSet<String> = u
                .mpids
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect();
            for c in &certs {
                if let Ok(m) = Mpids::from_certificate(c, &rules) {
                    for f in [ecos_smki::Fuel::Electricity, ecos_smki::Fuel::Gas] {
                        if let Some(id) = m.for_fuel(f) {
                            mpids.insert(id.to_string());
                        }
                    }
                }
            }
            let candidates = self
                .store
                .mpxns_supplied_by(&mpids, self.store.as_of_date(now), READINESS_MPXN_LIMIT)
                .await
                .map_err(|e| e.to_string())?;
            match readiness::report(&ctx, u.org_eui, &certs, now, &candidates).await {
                Ok(r) => {
                    let (today, switch, with_switch) = r.summary();
                    let mut scenarios: BTreeMap<&str, u64> = BTreeMap::new();
                    for row in &r.rows {
                        let verdicts = [Some(&row.today), row.on_switch_date.as_ref()];
                        for s in verdicts.into_iter().flatten().filter_map(|v| v.scenario()) {
                            *scenarios.entry(s.as_str()).or_default() += 1;
                        }
                    }
                    entry["mpids"] = serde_json::json!(r.mpids);
                    entry["mpxns"] = candidates.len().into();
                    entry["sampled"] = (candidates.len() as u32 == READINESS_MPXN_LIMIT).into();
                    entry["rows"] = r.rows.len().into();
                    entry["pass_today"] = today.into();
                    entry["fail_today"] = (r.rows.len() - today).into();
                    entry["with_switch"] = with_switch.into();
                    entry["pass_on_switch"] = switch.into();
                    entry["scenarios"] = serde_json::json!(scenarios);
                }
                Err(e) => entry["error"] = e.to_string().into(),
            }
            users.push(entry);
        }
        let v = serde_json::json!({ "available": true, "at": now, "users": users });
        *cache = Some((Instant::now(), v.clone()));
        Ok(v)
    }
}

/// An instant: RFC 3339 (`2026-06-01T10:00:00Z`), or a duration before `now`
/// (`90m`, `24h`, `7d`, `1h30m`; a leading `-` is allowed).
pub fn parse_instant(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let ago = s.strip_prefix('-').unwrap_or(s);
    // `7d`: days as 24 hours (the friendly format has no days for absolute durations).
    let d = match ago.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        Some(days) => days
            .checked_mul(24)
            .map(SignedDuration::from_hours)
            .ok_or_else(|| format!("{s:?}: too many days"))?,
        None => ago.parse::<SignedDuration>().map_err(|_| {
            format!("{s:?} is neither an RFC 3339 instant nor a duration like 90m, 24h or 7d")
        })?,
    };
    if d.is_negative() {
        return Err(format!("{s:?}: a duration before now must be positive"));
    }
    now.checked_sub(d).map_err(|e| format!("{s:?}: {e}"))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV: one line per group with its latest example; the
/// `examples` column lists every example's RequestID.
pub fn failures_csv(r: &FailureReport) -> String {
    let mut out = String::from(
        "group,key,name,refused,accepted,service_users,check,response_code,first,last,\
         example_request_id,example_at,example_message,examples\n",
    );
    let ids = |ex: &[FailureExample]| {
        ex.iter()
            .map(|e| e.request_id.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let latest = |ex: &[FailureExample]| {
        ex.last()
            .map(|e| [e.request_id.clone(), e.at.to_string(), e.message.clone()])
            .unwrap_or_default()
    };
    for g in &r.by_reason {
        let [id, at, msg] = latest(&g.examples);
        let cells = [
            "reason".to_string(),
            g.reason.clone(),
            String::new(),
            g.count.to_string(),
            String::new(),
            g.service_users.to_string(),
            g.check.clone().unwrap_or_default(),
            g.response_code.clone().unwrap_or_default(),
            g.first.to_string(),
            g.last.to_string(),
            id,
            at,
            msg,
            ids(&g.examples),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    for u in &r.by_service_user {
        let [id, at, msg] = latest(&u.examples);
        let cells = [
            "service_user".to_string(),
            u.service_user.clone(),
            u.name.clone().unwrap_or_default(),
            u.refused.to_string(),
            u.accepted.to_string(),
            String::new(),
            String::new(),
            String::new(),
            u.examples
                .first()
                .map(|e| e.at.to_string())
                .unwrap_or_default(),
            u.examples
                .last()
                .map(|e| e.at.to_string())
                .unwrap_or_default(),
            id,
            at,
            msg,
            ids(&u.examples),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        let _ = writeln!(out, "{}", line.join(","));
    }
    out
}

/// Register the page, its assets and the guarded JSON endpoints.
pub(crate) fn routes(r: &mut Routes, state: &Arc<AppState>) {
    r.add("get", "/", MethodFilter::GET, index);
    r.add("get", "/dashboard.js", MethodFilter::GET, script);
    r.add("get", "/dashboard.css", MethodFilter::GET, style);
    let mut d = Routes::new();
    d.add(
        "get",
        "/api/dashboard/v1/overview",
        MethodFilter::GET,
        overview,
    );
    d.add(
        "get",
        "/api/dashboard/v1/traffic",
        MethodFilter::GET,
        traffic,
    );
    d.add(
        "get",
        "/api/dashboard/v1/failures",
        MethodFilter::GET,
        failures,
    );
    d.add(
        "get",
        "/api/dashboard/v1/latency",
        MethodFilter::GET,
        latency,
    );
    d.add(
        "get",
        "/api/dashboard/v1/migration",
        MethodFilter::GET,
        migration,
    );
    d.add(
        "get",
        "/api/dashboard/v1/readiness",
        MethodFilter::GET,
        readiness_view,
    );
    d.add("get", "/api/dashboard/v1/audit", MethodFilter::GET, audit);
    let layer = axum::middleware::from_fn_with_state(state.clone(), guard);
    let router = std::mem::take(&mut r.router);
    r.router = router.merge(d.router.route_layer(layer));
    r.seen.extend(d.seen);
}

/// Register the admin API's report routes (the caller adds the auth layer).
pub(crate) fn admin_routes(a: &mut Routes) {
    a.add(
        "get",
        "/api/admin/v1/report/failures",
        MethodFilter::GET,
        admin_failures,
    );
}

fn is_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(a)| match a.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback(),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
}

/// Loopback clients pass; others need the admin token (403 when none is configured).
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if is_loopback(&req) {
        return next.run(req).await;
    }
    let Some(token) = st.settings.admin_token.as_deref() else {
        return json_error(
            StatusCode::FORBIDDEN,
            "the dashboard's data are served to loopback clients only unless admin.token is configured",
        );
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if super::admin::constant_time_eq(t.as_bytes(), token.as_bytes()) => {
            next.run(req).await
        }
        other => {
            let why = if other.is_some() {
                "invalid bearer token"
            } else {
                "the admin bearer token is required away from loopback"
            };
            let mut resp = json_error(StatusCode::UNAUTHORIZED, why);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ecos-dashboard\""),
            );
            resp
        }
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /`: the page.
async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /dashboard.js`.
async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /dashboard.css`.
async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// Query of the windowed endpoints: `since`/`until` as RFC 3339 instants or
/// durations before now (`90m`, `24h`, `7d`), `bucket` in seconds (default:
/// about 60 buckets), `examples` per group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WindowQuery {
    since: Option<String>,
    until: Option<String>,
    bucket: Option<u64>,
    examples: Option<usize>,
    format: Option<String>,
}

/// A window from `since`/`until` (default: the last hour up to now).
pub(crate) fn window_of(
    since: Option<&str>,
    until: Option<&str>,
    default_width: SignedDuration,
    now: Timestamp,
) -> Result<Window, String> {
    let until = match until {
        Some(s) => parse_instant(s, now)?,
        None => now,
    };
    let since = match since {
        Some(s) => parse_instant(s, now)?,
        None => until
            .checked_sub(default_width)
            .map_err(|e| format!("since: {e}"))?,
    };
    Window::new(since, until).map_err(|e| e.to_string())
}

/// A bucket width giving about 60 buckets, rounded to a readable step.
pub(crate) fn auto_bucket(w: &Window) -> u64 {
    let span = w.until.duration_since(w.since).as_secs().max(1) as u64;
    const STEPS: &[u64] = &[
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
        172800, 604800,
    ];
    let want = span.div_ceil(60);
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or_else(|| want.div_ceil(86400) * 86400)
}

type Q = Result<Query<WindowQuery>, axum::extract::rejection::QueryRejection>;

struct Ctx {
    dash: Arc<Dashboard>,
    window: Window,
    bucket: u64,
    q: WindowQuery,
}

// The error is the finished response; it is returned once per request.
#[allow(clippy::result_large_err)]
fn ctx(st: &AppState, q: Q, default_width: SignedDuration) -> Result<Ctx, Response> {
    let Query(q) = q.map_err(|e| json_error(StatusCode::BAD_REQUEST, &e.body_text()))?;
    let dash = st.dashboard.clone().ok_or_else(|| {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service runs without a store: no dashboard data",
        )
    })?;
    let window = window_of(
        q.since.as_deref(),
        q.until.as_deref(),
        default_width,
        Timestamp::now(),
    )
    .map_err(|e| json_error(StatusCode::BAD_REQUEST, &e))?;
    let bucket = q.bucket.unwrap_or_else(|| auto_bucket(&window));
    Ok(Ctx {
        dash,
        window,
        bucket,
        q,
    })
}

fn store_error(e: impl std::fmt::Display) -> Response {
    let msg = e.to_string();
    // A bad window or bucket is the caller's; anything else is the store's.
    if msg.contains("bucket") || msg.contains("window") {
        json_error(StatusCode::BAD_REQUEST, &msg)
    } else {
        json_error(StatusCode::SERVICE_UNAVAILABLE, &msg)
    }
}

const HOUR: SignedDuration = SignedDuration::from_hours(1);

/// `GET /api/dashboard/v1/overview`: totals of the window and the state of
/// the service.
async fn overview(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let c = match ctx(&st, q, HOUR) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let s = &c.dash.store;
    let report = match s.failure_report(c.window, 0).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    let migration = match s.migration_counts().await {
        Ok(m) => m,
        Err(e) => return store_error(e),
    };
    let depth = st.outbound.depth().await.ok();
    let audit = c.dash.audit_status().await;
    let decided = report.accepted + report.refused;
    axum::Json(serde_json::json!({
        "now": Timestamp::now(),
        "window": c.window,
        "accepted": report.accepted,
        "refused": report.refused,
        "acceptance_rate": (decided > 0).then(|| report.accepted as f64 / decided as f64),
        "reasons": report.by_reason.len(),
        "service_users": report.by_service_user.len(),
        "uptime_secs": st.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "backend": format!("{:?}", s.backend()).to_lowercase(),
        "outbound": depth.map(|d| serde_json::json!({ "undelivered": d.undelivered, "parked": d.parked })),
        "migration": {
            "devices": migration.by_state.values().sum::<u64>(),
            "migrated": migration.by_state.get("migrated").copied().unwrap_or(0),
        },
        "audit": match audit { Ok(a) => a, Err(e) => serde_json::json!({ "error": e }) },
    }))
    .into_response()
}

/// `GET /api/dashboard/v1/traffic`: decisions per bucket, refusals by reason.
async fn traffic(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let c = match ctx(&st, q, HOUR) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match c.dash.store.traffic_series(c.window, c.bucket).await {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/dashboard/v1/failures`: refusals by reason and service user.
async fn failures(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let c = match ctx(&st, q, HOUR) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let n = c.q.examples.unwrap_or(DEFAULT_EXAMPLES).min(50);
    match c.dash.store.failure_report(c.window, n).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/admin/v1/report/failures`: the failure report as JSON or CSV
/// (`format=csv`); default window the last 24 hours.
async fn admin_failures(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let c = match ctx(&st, q, SignedDuration::from_hours(24)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let n = c.q.examples.unwrap_or(DEFAULT_EXAMPLES).min(1000);
    let report = match c.dash.store.failure_report(c.window, n).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    match c.q.format.as_deref().unwrap_or("json") {
        "json" => axum::Json(report).into_response(),
        "csv" => {
            let mut resp = failures_csv(&report).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            resp
        }
        other => json_error(
            StatusCode::BAD_REQUEST,
            &format!("format {other:?}: use json or csv"),
        ),
    }
}

/// `GET /api/dashboard/v1/latency`: device round trips per bucket (store)
/// and HTTP stage latency since start (this process's histograms).
async fn latency(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let c = match ctx(&st, q, HOUR) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let rt = match c.dash.store.device_round_trips(c.window, c.bucket).await {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    st.metrics.run_upkeep();
    let stages = stage_latency(&st.metrics.render(), super::metrics::STAGE_SECONDS);
    axum::Json(serde_json::json!({
        "device_round_trip": rt,
        "http_stages": stages,
    }))
    .into_response()
}

/// Quantiles of each `stage` of a Prometheus histogram in text format,
/// interpolated within buckets as `histogram_quantile` does.
pub(crate) fn stage_latency(text: &str, metric: &str) -> BTreeMap<String, serde_json::Value> {
    let prefix = format!("{metric}_bucket{{");
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                kv.strip_prefix(name)
                    .and_then(|v| v.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
            })
        };
        let (Some(stage), Some(le), Ok(n)) =
            (label("stage"), label("le"), value.trim().parse::<f64>())
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        buckets.entry(stage.to_string()).or_default().push((le, n));
    }
    buckets
        .into_iter()
        .filter_map(|(stage, mut b)| {
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            let total = b.last()?.1;
            if total <= 0.0 {
                return None;
            }
            let q = |p: f64| {
                let rank = p * total;
                let mut prev = (0.0, 0.0);
                for &(le, n) in &b {
                    if n >= rank {
                        if le.is_infinite() {
                            return prev.0 * 1000.0;
                        }
                        let frac = if n > prev.1 {
                            (rank - prev.1) / (n - prev.1)
                        } else {
                            1.0
                        };
                        return (prev.0 + (le - prev.0) * frac) * 1000.0;
                    }
                    prev = (le, n);
                }
                prev.0 * 1000.0
            };
            Some((
                stage,
                serde_json::json!({
                    "count": total as u64,
                    "p50_ms": q(0.5),
                    "p95_ms": q(0.95),
                    "p99_ms": q(0.99),
                }),
            ))
        })
        .collect()
}

/// `GET /api/dashboard/v1/migration`: devices by state and region, progress
/// over time (by default over the span the transition log covers), the retry
/// backlog and the delivery backlog.
async fn migration(State(st): State<Arc<AppState>>, q: Q) -> Response {
    let Ok(Query(query)) = q else {
        return json_error(StatusCode::BAD_REQUEST, "bad query");
    };
    let Some(dash) = st.dashboard.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service runs without a store: no dashboard data",
        );
    };
    let s = &dash.store;
    let now = Timestamp::now();
    let counts = match s.migration_counts().await {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let extent = match s.migration_extent().await {
        Ok(e) => e,
        Err(e) => return store_error(e),
    };
    let window = if query.since.is_some() || query.until.is_some() {
        match window_of(query.since.as_deref(), query.until.as_deref(), HOUR, now) {
            Ok(w) => Some(w),
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
        }
    } else {
        // The span of the log, widened to at least a minute.
        extent.map(|(lo, hi)| {
            let hi = hi.max(lo + SignedDuration::from_mins(1)) + SignedDuration::from_secs(1);
            Window {
                since: lo,
                until: hi,
            }
        })
    };
    let progress = match window {
        Some(w) => {
            let bucket = query.bucket.unwrap_or_else(|| auto_bucket(&w));
            match s.migration_progress(w, bucket).await {
                Ok(p) => Some(p),
                Err(e) => return store_error(e),
            }
        }
        None => None,
    };
    let backlog = match s.migration_retry_backlog(now).await {
        Ok(b) => b,
        Err(e) => return store_error(e),
    };
    let depth = st.outbound.depth().await.ok();
    axum::Json(serde_json::json!({
        "counts": counts,
        "progress": progress,
        "retry_backlog": backlog,
        "delivery_backlog": depth.map(|d| serde_json::json!({ "undelivered": d.undelivered, "parked": d.parked })),
    }))
    .into_response()
}

/// `GET /api/dashboard/v1/readiness`: per service user, how many of its
/// MPxN × meter rows would pass a 6.23 today and on the switch date, and
/// the scenarios of the failures.
async fn readiness_view(State(st): State<Arc<AppState>>) -> Response {
    let Some(dash) = st.dashboard.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service runs without a store: no dashboard data",
        );
    };
    match dash.readiness_summary().await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// `GET /api/dashboard/v1/audit`: the audit chain's verification.
async fn audit(State(st): State<Arc<AppState>>) -> Response {
    let Some(dash) = st.dashboard.clone() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service runs without a store: no dashboard data",
        );
    };
    match dash.audit_status().await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_readable_steps() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let w = |h: i64| Window::last(SignedDuration::from_hours(h), t).unwrap();
        assert_eq!(auto_bucket(&w(1)), 60);
        assert_eq!(auto_bucket(&w(24)), 1800);
        assert_eq!(auto_bucket(&w(24 * 7)), 10800);
        let short = Window::new(t, t + SignedDuration::from_secs(30)).unwrap();
        assert_eq!(auto_bucket(&short), 1);
    }

    #[test]
    fn windows_from_instants_and_durations() {
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let w = window_of(Some("24h"), None, HOUR, now).unwrap();
        assert_eq!(w.since, "2026-01-01T00:00:00Z".parse().unwrap());
        let w = window_of(None, Some("2026-01-01T12:00:00Z"), HOUR, now).unwrap();
        assert_eq!(w.since, "2026-01-01T11:00:00Z".parse().unwrap());
        assert!(window_of(Some("soon"), None, HOUR, now).is_err());
        assert!(window_of(Some("-1h"), Some("2h"), HOUR, now).is_err());
    }

    /// A local address other than loopback, if the machine has one (a UDP
    /// "connect" sends nothing; it only picks the outgoing interface).
    fn non_loopback_ip() -> Option<std::net::IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        s.connect("192.0.2.1:9").ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    async fn serve(
        token: Option<&str>,
        dashboard: Option<Arc<Dashboard>>,
    ) -> (u16, tokio::sync::oneshot::Sender<()>) {
        let mut c = crate::config::Config::default();
        c.http.listen = "0.0.0.0:0".parse().unwrap();
        c.admin.token = token.map(str::to_string);
        let parts = super::super::Parts {
            dashboard,
            ..Default::default()
        };
        let server = super::super::Server::bind(super::super::Settings::from(&c), None, parts)
            .await
            .unwrap();
        let port = server.local_addr().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        (port, tx)
    }

    /// Over real HTTP: loopback reads without login; another address needs
    /// the admin token, and gets 403 when none is configured; the page is
    /// open; the admin failure report needs the token everywhere.
    #[tokio::test]
    async fn loopback_is_open_elsewhere_the_admin_token_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &ecos_store::StoreLocation::sqlite_in_dir(dir.path()),
            ecos_store::StoreConfig::default(),
        )
        .await
        .unwrap();
        store
            .append_audit(&ecos_store::NewAuditEntry {
                actor: "ecos-party",
                action: "refused",
                subject: "90-B3-D5-1F-30-03-00-00:00-DB-12-34-56-78-90-A0:5",
                detail: r#"{"reason":"replay","check":"replay","response_code":"E3","message":"m","evidence":{}}"#,
            })
            .await
            .unwrap();
        let dash = Some(Arc::new(Dashboard::new(store.clone())));
        let c = reqwest::Client::new();
        let (port, stop) = serve(Some("secret"), dash.clone()).await;
        let local = format!("http://127.0.0.1:{port}");
        let r = c
            .get(format!("{local}/api/dashboard/v1/failures?since=1h"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["refused"], 1);
        assert_eq!(v["by_reason"][0]["reason"], "replay");
        let bad = c
            .get(format!("{local}/api/dashboard/v1/traffic?since=soon"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        let r = c
            .get(format!("{local}/api/admin/v1/report/failures?format=csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            401,
            "the admin API needs the token on loopback too"
        );
        let r = c
            .get(format!("{local}/api/admin/v1/report/failures?format=csv"))
            .bearer_auth("secret")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let csv = r.text().await.unwrap();
        assert!(
            csv.lines().nth(1).unwrap().starts_with("reason,replay,,1,"),
            "{csv}"
        );
        let page = c.get(format!("{local}/")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("/dashboard.js"));
        if let Some(ip) = non_loopback_ip() {
            let remote = format!("http://{ip}:{port}");
            let r = c
                .get(format!("{remote}/api/dashboard/v1/overview"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{ip} is not loopback");
            let r = c
                .get(format!("{remote}/api/dashboard/v1/overview"))
                .bearer_auth("secret")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<serde_json::Value>().await.unwrap()["refused"], 1);
            let page = c.get(format!("{remote}/")).send().await.unwrap();
            assert_eq!(page.status(), 200, "the page itself holds no data");
            let _ = stop.send(());
            let (port, stop) = serve(None, dash).await;
            let r = c
                .get(format!("http://{ip}:{port}/api/dashboard/v1/audit"))
                .bearer_auth("secret")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "no token configured: loopback only");
            let r = c
                .get(format!("http://127.0.0.1:{port}/api/dashboard/v1/audit"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.json::<serde_json::Value>().await.unwrap()["intact"], true);
            let _ = stop.send(());
        } else {
            eprintln!("skipping the non-loopback half: this machine has no other address");
            let _ = stop.send(());
        }
        store.close().await;
    }

    #[test]
    fn stage_quantiles_from_prometheus_text() {
        let text = "\
# TYPE ecos_request_stage_seconds histogram
ecos_request_stage_seconds_bucket{stage=\"total\",le=\"0.01\"} 50
ecos_request_stage_seconds_bucket{stage=\"total\",le=\"0.1\"} 100
ecos_request_stage_seconds_bucket{stage=\"total\",le=\"+Inf\"} 100
ecos_request_stage_seconds_sum{stage=\"total\"} 2
ecos_request_stage_seconds_count{stage=\"total\"} 100
ecos_request_stage_seconds_bucket{stage=\"idle\",le=\"+Inf\"} 0
";
        let s = stage_latency(text, "ecos_request_stage_seconds");
        assert_eq!(s.len(), 1, "a stage with no observations is left out");
        let t = &s["total"];
        assert_eq!(t["count"], 100);
        assert!((t["p50_ms"].as_f64().unwrap() - 10.0).abs() < 1e-9);
        assert!((t["p95_ms"].as_f64().unwrap() - 91.0).abs() < 1e-9);
    }
}
