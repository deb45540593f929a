//! `ecos serve`: the DUIS endpoint, polling, operations endpoints and the
//! admin API over HTTP (axum), with TLS, back-pressure and graceful shutdown.
//!
//! - [`Server`]: bind, then [`Server::run`] until a shutdown signal.
//! - [`ServiceHandle`]: install the request handler (the 6.23 pipeline).
//! - [`admission`]: bounded concurrency and load shedding.
//! - [`delivery`]: the outbound queue port and the delivery worker.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`admin`]: the admin API and the OpenAPI document.
//! - [`data`]: the admin API over the store (imports, look-ups, requests, audit).

pub mod admin;
pub mod admission;
pub mod conn;
// Its constructors are for the binary's wiring.
#[allow(dead_code)]
pub mod dashboard;
pub mod data;
// The producer side (push) is for the 6.23 pipeline, which the binary wires in.
#[allow(dead_code)]
pub mod delivery;
pub mod duis;
pub mod metrics;
pub mod migration;
pub mod tls;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use ecos_party::ServiceRequestHandler;
use ecos_party::api::BoxFuture;
use serde::Deserialize;
use tokio::sync::watch;

use self::admission::{Admission, AdmissionError};
use self::delivery::{DeliverySettings, DeliveryWorker, MemoryQueue, OutboundQueue};
use self::duis::RequestEcho;
use self::metrics as m;
use crate::config::{Config, TransportErrorCodes};

/// A readiness probe beyond the handler being installed, e.g. "the store
/// answers": `Ok` when ready, else why not.
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Errors of the service as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The delivery worker could not be built.
    #[error(transparent)]
    Delivery(#[from] delivery::ClientError),
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits and settings of the HTTP layer, from [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest body, in bytes.
    pub body_limit: usize,
    /// Time to receive and answer a request.
    pub request_timeout: Duration,
    /// Processing slots.
    pub max_in_flight: usize,
    /// Waiting line.
    pub max_queued: usize,
    /// `Retry-After` with a 503, in seconds.
    pub retry_after_secs: u64,
    /// Time allowed to finish in-flight work on shutdown.
    pub shutdown_grace: Duration,
    /// Response codes of the HTTP layer's refusals.
    pub error_codes: TransportErrorCodes,
    /// Admin bearer token; `None`: no admin API.
    pub admin_token: Option<String>,
    /// Largest CSV body of an admin import, in bytes.
    pub import_body_limit: usize,
    /// Delivery settings.
    pub delivery: DeliverySettings,
    /// Capacity and retention of the default in-memory outbound queue.
    pub outbound_capacity: (usize, usize),
    /// Connection limits.
    pub conn: conn::ConnLimits,
    /// Polling bearer token → service user EUI-64 (empty: polling is open).
    pub poll_tokens: std::collections::BTreeMap<String, String>,
}

impl From<&Config> for Settings {
    fn from(c: &Config) -> Self {
        Settings {
            listen: c.http.listen,
            body_limit: c.http.body_limit_bytes,
            request_timeout: Duration::from_secs(c.http.request_timeout_secs),
            max_in_flight: c.http.max_in_flight,
            max_queued: c.http.max_queued,
            retry_after_secs: c.http.retry_after_secs,
            shutdown_grace: Duration::from_secs(c.http.shutdown_grace_secs),
            error_codes: c.http.error_codes.clone(),
            admin_token: c.admin.token.clone(),
            import_body_limit: c.admin.import_body_limit_bytes,
            delivery: DeliverySettings::from(&c.delivery),
            outbound_capacity: (c.delivery.queue_capacity, c.delivery.poll_retention),
            poll_tokens: c
                .delivery
                .poll_tokens
                .iter()
                .filter_map(|(eui, t)| delivery::normalise_eui(eui).map(|e| (t.clone(), e)))
                .collect(),
            conn: conn::ConnLimits {
                max_connections: c.http.max_connections,
                header_read_timeout: Duration::from_secs(c.http.header_read_timeout_secs),
            },
        }
    }
}

/// What the service is built around; everything optional has a default.
#[derive(Default)]
pub struct Parts {
    /// The request handler; can also be installed later with [`ServiceHandle::install_handler`].
    pub handler: Option<Arc<dyn ServiceRequestHandler>>,
    /// Extra readiness probe (store reachable).
    pub readiness: Option<Readiness>,
    /// The outbound queue (default: a bounded [`MemoryQueue`]).
    pub outbound: Option<Arc<dyn OutboundQueue>>,
    /// The effective configuration, masked, shown by the admin API.
    pub config: Option<Config>,
    /// The TCoS → ECoS migration's control (admin endpoints and metrics).
    pub migration: Option<Arc<migration::MigrationControl>>,
    /// The dashboard's data sources (without: its endpoints answer 503).
    pub dashboard: Option<Arc<dashboard::Dashboard>>,
    /// The store, for the admin API's imports and look-ups (without: they answer 503).
    pub store: Option<ecos_store::Store>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("handler", &self.handler.is_some())
            .field("readiness", &self.readiness.is_some())
            .field("outbound", &self.outbound.is_some())
            .field("migration", &self.migration.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

/// State shared by the handlers.
pub(crate) struct AppState {
    settings: Settings,
    handler: RwLock<Option<Arc<dyn ServiceRequestHandler>>>,
    readiness: Option<Readiness>,
    admission: Admission,
    outbound: Arc<dyn OutboundQueue>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutting_down: AtomicBool,
    started: Instant,
    config: Option<Config>,
    migration: Option<Arc<migration::MigrationControl>>,
    dashboard: Option<Arc<dashboard::Dashboard>>,
    store: Option<ecos_store::Store>,
}

impl AppState {
    fn handler(&self) -> Option<Arc<dyn ServiceRequestHandler>> {
        self.handler
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A handle on a running or bound service (for wiring the pipeline in).
#[allow(dead_code)]
#[derive(Clone)]
pub struct ServiceHandle {
    state: Arc<AppState>,
}

impl std::fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHandle").finish_non_exhaustive()
    }
}

#[allow(dead_code)]
impl ServiceHandle {
    /// Install (or replace) the request handler; the service is ready once
    /// one is installed and the readiness probe passes.
    pub fn install_handler(&self, handler: Arc<dyn ServiceRequestHandler>) {
        *self
            .state
            .handler
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    /// The outbound queue, for producers of asynchronous responses and alerts.
    pub fn outbound(&self) -> Arc<dyn OutboundQueue> {
        self.state.outbound.clone()
    }
}

enum Bound {
    Plain(tokio::net::TcpListener),
    Tls(tls::TlsListener),
}

/// A bound, not yet running, service.
pub struct Server {
    state: Arc<AppState>,
    listener: Bound,
    local: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bind the listener (TLS when `tls` is given) and build the state.
    pub async fn bind(
        settings: Settings,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
        parts: Parts,
    ) -> Result<Server, ServeError> {
        let addr = settings.listen;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = tcp.local_addr()?;
        let listener = match tls {
            Some(cfg) => Bound::Tls(tls::TlsListener::new(tcp, cfg)?),
            None => Bound::Plain(tcp),
        };
        let outbound = parts.outbound.unwrap_or_else(|| {
            let (cap, retention) = settings.outbound_capacity;
            Arc::new(MemoryQueue::new(cap, retention))
        });
        let state = Arc::new(AppState {
            admission: Admission::new(settings.max_in_flight, settings.max_queued),
            settings,
            handler: RwLock::new(parts.handler),
            readiness: parts.readiness,
            outbound,
            metrics: m::handle(),
            shutting_down: AtomicBool::new(false),
            started: Instant::now(),
            config: parts.config.map(|c| c.masked()),
            migration: parts.migration,
            dashboard: parts.dashboard,
            store: parts.store,
        });
        Ok(Server {
            state,
            listener,
            local,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle to install the handler and reach the outbound queue.
    pub fn handle(&self) -> ServiceHandle {
        ServiceHandle {
            state: self.state.clone(),
        }
    }

    /// Serve until `shutdown` resolves; then stop accepting, let in-flight
    /// requests and their pipeline work finish (up to the shutdown grace),
    /// stop the delivery worker after its current attempts, and return.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = DeliveryWorker::new(state.outbound.clone(), state.settings.delivery.clone())?;
        let worker = tokio::spawn(worker.run(stop_rx.clone()));
        let app = router(state.clone()).0;
        let signal_state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal_state.shutting_down.store(true, Ordering::SeqCst);
            tracing::info!("shutdown requested: finishing in-flight requests");
            let _ = stop_tx.send(true);
        });
        let grace = state.settings.shutdown_grace;
        let limits = state.settings.conn;
        let closed = match self.listener {
            Bound::Plain(l) => conn::serve(l, app, limits, stop_rx.clone(), grace).await,
            Bound::Tls(l) => conn::serve(l, app, limits, stop_rx.clone(), grace).await,
        };
        if !closed {
            tracing::warn!(
                ?grace,
                "connections still open after the shutdown grace; closing them"
            );
        }
        // Pipeline work runs in its own tasks (a client that goes away does
        // not cancel it): wait for it too.
        let left = state.admission.drain(grace).await;
        if left > 0 {
            tracing::error!(
                left,
                "requests still in the pipeline after the shutdown grace"
            );
        }
        if tokio::time::timeout(grace, worker).await.is_err() {
            tracing::warn!("delivery worker still busy after the shutdown grace");
        }
        let depth = state.outbound.depth().await.unwrap_or_default();
        tracing::info!(
            undelivered = depth.undelivered,
            parked = depth.parked,
            "stopped"
        );
        Ok(())
    }
}

/// One route: method and path as they appear in the OpenAPI document.
pub type RouteId = (&'static str, &'static str);

/// Build the router; also returns every (method, path) registered, which a
/// test compares with the OpenAPI document.
pub(crate) fn router(state: Arc<AppState>) -> (Router, Vec<RouteId>) {
    let mut r = Routes::new();
    r.add("post", "/api/v1/serviceS", MethodFilter::POST, service_s);
    r.add("get", "/api/v1/responses", MethodFilter::GET, responses);
    r.add("get", "/healthz", MethodFilter::GET, healthz);
    r.add("get", "/readyz", MethodFilter::GET, readyz);
    r.add("get", "/metrics", MethodFilter::GET, metrics_endpoint);
    r.add(
        "get",
        "/api/openapi.json",
        MethodFilter::GET,
        admin::openapi,
    );
    dashboard::routes(&mut r, &state);
    if let Some(token) = state.settings.admin_token.clone() {
        let mut a = Routes::new();
        admin::routes(&mut a);
        data::routes(&mut a);
        migration::routes(&mut a);
        dashboard::admin_routes(&mut a);
        let layer =
            axum::middleware::from_fn_with_state(Arc::<str>::from(token), admin::require_bearer);
        r.router = r.router.merge(a.router.route_layer(layer));
        r.seen.extend(a.seen);
    }
    let app = r
        .router
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state);
    (app, r.seen)
}

/// A router that remembers what it registered.
pub(crate) struct Routes {
    router: Router<Arc<AppState>>,
    seen: Vec<RouteId>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            seen: Vec::new(),
        }
    }

    pub(crate) fn add<H, T>(
        &mut self,
        method: &'static str,
        path: &'static str,
        filter: MethodFilter,
        h: H,
    ) where
        H: axum::handler::Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let r = std::mem::take(&mut self.router);
        self.router = r.route(path, axum::routing::on(filter, h));
        self.seen.push((method, path));
    }
}

/// A DUIS document response.
fn xml(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

fn count(outcome: &'static str, reason: String) {
    ::metrics::counter!(m::REQUESTS_TOTAL, "outcome" => outcome, "reason" => reason).increment(1);
}

fn stage(name: &'static str, since: Instant) {
    ::metrics::histogram!(m::STAGE_SECONDS, "stage" => name).record(since.elapsed().as_secs_f64());
}

/// Refusal by the HTTP layer: a DUIS error acknowledgement with an HTTP status.
fn refuse(
    st: &AppState,
    status: StatusCode,
    code: &str,
    reason: &'static str,
    echo: &RequestEcho,
) -> Response {
    let outcome = if status == StatusCode::SERVICE_UNAVAILABLE {
        "shed"
    } else if status == StatusCode::GATEWAY_TIMEOUT {
        "timeout"
    } else {
        "refused"
    };
    count(outcome, reason.to_string());
    let mut resp = xml(
        status,
        duis::error_acknowledgement(code, echo, jiff::Timestamp::now()),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(st.settings.retry_after_secs),
        );
    }
    resp
}

fn is_xml_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/xml"
        || mime == "text/xml"
        || (mime.starts_with("application/") && mime.ends_with("+xml"))
}

/// `POST /api/v1/serviceS`: a DUIS request in, the synchronous answer out.
async fn service_s(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let received_at = jiff::Timestamp::now();
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + st.settings.request_timeout;
    let codes = &st.settings.error_codes;
    let none = RequestEcho::default();
    if !is_xml_content_type(&headers) {
        return refuse(
            &st,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &codes.unsupported_media_type,
            "unsupported_media_type",
            &none,
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.settings.body_limit as u64) {
        return refuse(
            &st,
            StatusCode::PAYLOAD_TOO_LARGE,
            &codes.body_too_large,
            "body_too_large",
            &none,
        );
    }
    if st.shutting_down.load(Ordering::SeqCst) {
        return refuse(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            &codes.overloaded,
            "shutting_down",
            &none,
        );
    }
    let Some(handler) = st.handler() else {
        return refuse(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            &codes.overloaded,
            "not_ready",
            &none,
        );
    };
    let slot = match st.admission.enter(st.settings.request_timeout).await {
        Ok(s) => s,
        Err(AdmissionError::Shed { .. }) => {
            return refuse(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &codes.overloaded,
                "overloaded",
                &none,
            );
        }
        Err(AdmissionError::Timeout(_)) => {
            return refuse(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &codes.overloaded,
                "admission_timeout",
                &none,
            );
        }
        Err(_) => {
            return refuse(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &codes.overloaded,
                "shutting_down",
                &none,
            );
        }
    };
    stage(m::STAGE_ADMISSION, t0);
    let t_recv = Instant::now();
    let bytes =
        match tokio::time::timeout_at(deadline, axum::body::to_bytes(body, st.settings.body_limit))
            .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let too_large = e
                    .into_inner()
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                return if too_large {
                    refuse(
                        &st,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &codes.body_too_large,
                        "body_too_large",
                        &none,
                    )
                } else {
                    refuse(
                        &st,
                        StatusCode::BAD_REQUEST,
                        &codes.bad_body,
                        "bad_body",
                        &none,
                    )
                };
            }
            Err(_) => {
                return refuse(
                    &st,
                    StatusCode::REQUEST_TIMEOUT,
                    &codes.timeout,
                    "body_timeout",
                    &none,
                );
            }
        };
    stage(m::STAGE_RECEIVE, t_recv);
    // The pipeline runs in its own task holding the slot: a client that
    // goes away or times out does not cancel durable work half-way.
    let work_bytes = bytes.clone();
    let task = tokio::spawn(async move {
        let t = Instant::now();
        let answer = handler.submit(&work_bytes, received_at).await;
        stage(m::STAGE_PROCESS, t);
        drop(slot);
        answer
    });
    let answer = match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "request handler failed");
            count("error", "handler_panic".into());
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                duis::error_acknowledgement(
                    &codes.bad_body,
                    &RequestEcho::read(&bytes),
                    jiff::Timestamp::now(),
                ),
            );
        }
        Err(_) => {
            let echo = RequestEcho::read(&bytes);
            tracing::warn!(request_id = ?echo.request_id, "answer not ready within the request timeout; processing goes on");
            return refuse(
                &st,
                StatusCode::GATEWAY_TIMEOUT,
                &codes.timeout,
                "timeout",
                &echo,
            );
        }
    };
    stage(m::STAGE_TOTAL, t0);
    let status =
        StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = duis::response_code(&answer.body);
    let outcome = match code.as_deref().map(|c| c.as_bytes()[0]) {
        Some(b'I') | Some(b'W') => "accepted",
        Some(b'E') => "rejected",
        _ => "unknown",
    };
    count(outcome, code.clone().unwrap_or_else(|| "none".into()));
    tracing::info!(
        response_code = code.as_deref().unwrap_or("-"),
        status = status.as_u16(),
        elapsed_ms = t0.elapsed().as_millis() as u64,
        "serviceS answered"
    );
    let mut resp = xml(status, answer.body);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(st.settings.retry_after_secs),
        );
    }
    resp
}

/// Query of `GET /api/v1/responses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResponsesQuery {
    since: Option<u64>,
    service_user: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/responses?since=CURSOR&service_user=EUI&limit=N`: DUIS
/// responses and alerts queued after the cursor, oldest first.
async fn responses(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    q: Result<Query<ResponsesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let mut q = match q {
        Ok(Query(q)) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    if !st.settings.poll_tokens.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let user = st
            .settings
            .poll_tokens
            .iter()
            .find(|(t, _)| admin::constant_time_eq(t.as_bytes(), presented.as_bytes()))
            .map(|(_, u)| u.clone());
        let Some(user) = user else {
            let mut resp = json_error(
                StatusCode::UNAUTHORIZED,
                "a service user bearer token is required",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ecos-responses\""),
            );
            return resp;
        };
        if let Some(asked) = &q.service_user
            && delivery::normalise_eui(asked).as_deref() != Some(user.as_str())
        {
            return json_error(
                StatusCode::FORBIDDEN,
                "the token belongs to another service user",
            );
        }
        q.service_user = Some(user);
    }
    let since = q.since.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match st
        .outbound
        .read_since(q.service_user.as_deref(), since, limit)
        .await
    {
        Ok(items) => {
            let next = items.last().map(|i| i.cursor).unwrap_or(since);
            let items: Vec<serde_json::Value> = items
                .into_iter()
                .map(|i| {
                    serde_json::json!({
                        "cursor": i.cursor,
                        "service_user": i.service_user,
                        "enqueued_at": i.enqueued_at.to_string(),
                        "delivery": i.state,
                        "body": String::from_utf8_lossy(&i.body),
                    })
                })
                .collect();
            axum::Json(serde_json::json!({ "items": items, "next_cursor": next })).into_response()
        }
        Err(delivery::QueueError::BadServiceUser(u)) => json_error(
            StatusCode::BAD_REQUEST,
            &format!("service_user {u:?} is not an EUI-64"),
        ),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

pub(crate) fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// `GET /healthz`: the process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: a handler is installed, the readiness probe passes and the
/// service is not shutting down.
async fn readyz(State(st): State<Arc<AppState>>) -> Response {
    if st.shutting_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response();
    }
    if st.handler().is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no request handler installed\n",
        )
            .into_response();
    }
    if let Some(probe) = &st.readiness
        && let Err(why) = probe().await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// `GET /metrics`: Prometheus text format.
async fn metrics_endpoint(State(st): State<Arc<AppState>>) -> Response {
    if let Ok(d) = st.outbound.depth().await {
        ::metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_OUTBOUND).set(d.undelivered as f64);
        ::metrics::gauge!(m::QUEUE_DEPTH, "queue" => m::QUEUE_OUTBOUND_PARKED).set(d.parked as f64);
    }
    if let Some(mig) = &st.migration {
        mig.update_metrics().await;
    }
    st.metrics.run_upkeep();
    let mut resp = st.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
