//! Metric names, their descriptions, and the Prometheus recorder.
//!
//! The names are constants so that the pipeline, the delivery worker and
//! the dashboards agree on them; [`describe`] gives each its help text.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: DUIS requests answered, by `outcome` (`accepted`, `rejected`,
/// `refused`, `shed`, `timeout`, `unknown`) and `reason` (the DUIS response
/// code, or the HTTP layer's refusal reason).
pub const REQUESTS_TOTAL: &str = "ecos_requests_total";
/// Histogram: seconds spent in each `stage` of a request.
pub const STAGE_SECONDS: &str = "ecos_request_stage_seconds";
/// Gauge: items waiting in each `queue` (`admission`, `in_flight`, `outbound`, `outbound_parked`).
pub const QUEUE_DEPTH: &str = "ecos_queue_depth";
/// Histogram: seconds from sending a command to a device to its response or alert.
pub const DEVICE_ROUND_TRIP_SECONDS: &str = "ecos_device_round_trip_seconds";
/// Counter: delivery attempts of DUIS responses and alerts, by `outcome`
/// (`delivered`, `retry`, `parked`, `poll_only`).
pub const DELIVERIES_TOTAL: &str = "ecos_deliveries_total";

/// Stage label: waiting for a processing slot.
pub const STAGE_ADMISSION: &str = "admission";
/// Stage label: receiving the request body.
pub const STAGE_RECEIVE: &str = "receive";
/// Stage label: the pipeline's `submit`, from body to synchronous answer.
pub const STAGE_PROCESS: &str = "process";
/// Stage label: the whole request, as the HTTP layer sees it.
pub const STAGE_TOTAL: &str = "total";
/// Stage label: one delivery POST to a service user.
pub const STAGE_DELIVERY: &str = "delivery";

/// Queue label: requests waiting for a processing slot.
pub const QUEUE_ADMISSION: &str = "admission";
/// Queue label: requests being processed.
pub const QUEUE_IN_FLIGHT: &str = "in_flight";
/// Queue label: responses waiting for delivery.
pub const QUEUE_OUTBOUND: &str = "outbound";
/// Queue label: responses given up on after the last attempt.
pub const QUEUE_OUTBOUND_PARKED: &str = "outbound_parked";

/// Latency buckets (seconds) for every `_seconds` histogram.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// Give every metric its help text (needs the recorder installed first).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        "DUIS requests answered, by outcome and reason (response code or refusal reason)"
    );
    describe_histogram!(
        STAGE_SECONDS,
        Unit::Seconds,
        "Time spent in each stage of a DUIS request"
    );
    describe_gauge!(QUEUE_DEPTH, "Items waiting in each bounded queue");
    describe_histogram!(
        DEVICE_ROUND_TRIP_SECONDS,
        Unit::Seconds,
        "Time from a command sent to a device to its response or alert"
    );
    describe_counter!(
        DELIVERIES_TOTAL,
        "Delivery attempts of DUIS responses and alerts to service users, by outcome"
    );
}

/// The process-wide Prometheus recorder, installed on first use. If another
/// recorder was installed first, a detached one is returned (its scrape
/// shows nothing) and a warning is logged.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            };
            match builder().and_then(|b| b.install_recorder()) {
                Ok(h) => {
                    describe();
                    h
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}
