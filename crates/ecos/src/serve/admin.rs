//! The admin API (JSON, `Authorization: Bearer <token>`), present only when
//! a token is configured, and the OpenAPI document of every route.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use serde::Deserialize;

use super::{AppState, Routes, json_error};

/// The OpenAPI 3.1 document, hand-written; a test keeps it equal to the router.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Register the admin routes (the caller adds the auth layer).
pub(crate) fn routes(r: &mut Routes) {
    r.add("get", "/api/admin/v1/status", MethodFilter::GET, status);
    r.add("get", "/api/admin/v1/config", MethodFilter::GET, config);
    r.add("get", "/api/admin/v1/outbound", MethodFilter::GET, outbound);
    r.add(
        "post",
        "/api/admin/v1/outbound/{cursor}/requeue",
        MethodFilter::POST,
        requeue,
    );
}

/// Compare two byte strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuse a request without the configured bearer token (401).
pub(crate) async fn require_bearer(
    State(token): State<Arc<str>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => next.run(req).await,
        other => {
            let why = if other.is_some() {
                "invalid bearer token"
            } else {
                "missing bearer token"
            };
            tracing::warn!(path = %req.uri().path(), why, "admin API: unauthorised");
            let mut resp = json_error(StatusCode::UNAUTHORIZED, why);
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ecos-admin\""),
            );
            resp
        }
    }
}

/// `GET /api/openapi.json`.
pub(crate) async fn openapi() -> Response {
    let mut resp = OPENAPI.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /api/admin/v1/status`: what the service is doing now.
async fn status(State(st): State<Arc<AppState>>) -> Response {
    let depth = st.outbound.depth().await;
    let (undelivered, parked, queue_error) = match depth {
        Ok(d) => (Some(d.undelivered), Some(d.parked), None),
        Err(e) => (None, None, Some(e.to_string())),
    };
    axum::Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": st.started.elapsed().as_secs(),
        "handler_installed": st.handler().is_some(),
        "shutting_down": st.shutting_down.load(std::sync::atomic::Ordering::SeqCst),
        "requests": {
            "in_flight": st.admission.in_flight(),
            "queued": st.admission.queued(),
            "max_in_flight": st.settings.max_in_flight,
            "max_queued": st.settings.max_queued,
        },
        "outbound": { "undelivered": undelivered, "parked": parked, "error": queue_error },
    }))
    .into_response()
}

/// `GET /api/admin/v1/config`: the effective configuration, secrets masked.
async fn config(State(st): State<Arc<AppState>>) -> Response {
    match &st.config {
        Some(c) => axum::Json(c).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "the service was started without a configuration",
        ),
    }
}

/// Query of `GET /api/admin/v1/outbound`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundQuery {
    since: Option<u64>,
    service_user: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/admin/v1/outbound`: queued messages and their delivery state.
async fn outbound(
    State(st): State<Arc<AppState>>,
    q: Result<Query<OutboundQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.body_text()),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match st
        .outbound
        .read_since(q.service_user.as_deref(), q.since.unwrap_or(0), limit)
        .await
    {
        Ok(items) => axum::Json(serde_json::json!({ "items": items })).into_response(),
        Err(e @ super::delivery::QueueError::BadServiceUser(_)) => {
            json_error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /api/admin/v1/outbound/{cursor}/requeue`: retry a parked message.
async fn requeue(State(st): State<Arc<AppState>>, Path(cursor): Path<u64>) -> Response {
    use super::delivery::QueueError;
    match st.outbound.requeue(cursor, jiff::Timestamp::now()).await {
        Ok(()) => {
            axum::Json(serde_json::json!({ "cursor": cursor, "requeued": true })).into_response()
        }
        Err(e @ QueueError::NotFound(_)) => json_error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ QueueError::NotParked(_)) => json_error(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
