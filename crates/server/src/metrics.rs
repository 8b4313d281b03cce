//! Prometheus metrics of one router.
//!
//! Each router owns its recorder for request metrics (several servers in one
//! process, as in tests, do not mix their numbers), renders it at
//! `/metrics`, and refreshes the vault gauges at each scrape. What the vault
//! itself emits through the `metrics` facade (ingest batch sizes, commit
//! times, store errors) goes to one process-wide recorder, installed by the
//! first router and rendered after the router's own metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::AppState;
use crate::problem::VaultFailure;

const REQUESTS: &str = "evault_http_requests_total";
const DURATION: &str = "evault_http_request_duration_seconds";
const ERRORS: &str = "evault_vault_errors_total";
const TREE_SIZE: &str = "evault_tree_size";
const CHECKPOINT_SIZE: &str = "evault_checkpoint_size";
const CHECKPOINT_AGE: &str = "evault_checkpoint_age_seconds";

static META: Metadata<'static> = Metadata::new("evault_server", Level::INFO, Some(module_path!()));

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Histogram samples are folded into their buckets at most this often.
const UPKEEP_EVERY_MS: u64 = 5_000;

pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    last_upkeep_ms: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let builder = PrometheusBuilder::new();
        let recorder = match builder.set_buckets_for_metric(Matcher::Full(DURATION.into()), BUCKETS)
        {
            Ok(b) => b.build_recorder(),
            // Only an empty bucket list fails; fall back to summaries.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        recorder.describe_counter(
            REQUESTS.into(),
            None,
            "HTTP requests by method, route template and status".into(),
        );
        recorder.describe_histogram(
            DURATION.into(),
            Some(Unit::Seconds),
            "Time to produce the response head, by method, route template and status".into(),
        );
        recorder.describe_counter(
            ERRORS.into(),
            None,
            "Requests failed by the vault or its store, by kind".into(),
        );
        recorder.describe_gauge(TREE_SIZE.into(), None, "Records in the log".into());
        recorder.describe_gauge(
            CHECKPOINT_SIZE.into(),
            None,
            "Tree size of the latest signed checkpoint".into(),
        );
        recorder.describe_gauge(
            CHECKPOINT_AGE.into(),
            Some(Unit::Seconds),
            "Seconds since the latest checkpoint was signed".into(),
        );
        let handle = recorder.handle();
        let _ = global_handle();
        Arc::new(Metrics {
            recorder,
            handle,
            last_upkeep_ms: AtomicU64::new(0),
        })
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = vec![
            Label::new("method", method.to_string()),
            Label::new("route", route.to_string()),
            Label::new("status", status.to_string()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(REQUESTS, labels.clone()), &META)
            .increment(1);
        self.recorder
            .register_histogram(&Key::from_parts(DURATION, labels), &META)
            .record(seconds);
        let now = now_ms();
        let last = self.last_upkeep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= UPKEEP_EVERY_MS
            && self
                .last_upkeep_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.handle.run_upkeep();
        }
    }

    fn vault_error(&self, kind: &'static str) {
        let key = Key::from_parts(ERRORS, vec![Label::new("kind", kind)]);
        self.recorder.register_counter(&key, &META).increment(1);
    }

    fn gauge(&self, name: &'static str, value: f64) {
        self.recorder
            .register_gauge(&Key::from_name(name), &META)
            .set(value);
    }

    /// Sets the vault gauges and renders the text exposition format.
    pub fn render(
        &self,
        tree_size: u64,
        checkpoint_size: u64,
        checkpoint_ms: Option<i64>,
    ) -> String {
        self.gauge(TREE_SIZE, tree_size as f64);
        self.gauge(CHECKPOINT_SIZE, checkpoint_size as f64);
        if let Some(ms) = checkpoint_ms {
            let age = (now_ms() as i64).saturating_sub(ms).max(0) as f64 / 1000.0;
            self.gauge(CHECKPOINT_AGE, age);
        }
        let mut text = self.handle.render();
        if let Some(global) = global_handle() {
            global.run_upkeep();
            text.push_str(&global.render());
        }
        text
    }
}

/// The process-wide recorder for the vault's own metrics, if this process
/// could install one (another global recorder may already be in place).
fn global_handle() -> Option<&'static PrometheusHandle> {
    static GLOBAL: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .as_ref()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counts and times every request by its route template (not its path,
/// which would make one time series per record).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m.to_string(),
        _ => "OTHER".to_string(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let metrics = &state.metrics;
    let (status, elapsed) = (resp.status().as_u16(), start.elapsed());
    tracing::debug!(%method, %route, status, ?elapsed, "request");
    metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    if let Some(VaultFailure(kind)) = resp.extensions().get::<VaultFailure>() {
        metrics.vault_error(kind);
    }
    resp
}
