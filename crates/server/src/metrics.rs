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
const GRPC_REQUESTS: &str = "evault_grpc_requests_total";
const GRPC_DURATION: &str = "evault_grpc_request_duration_seconds";
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
        let recorder = match builder
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(GRPC_DURATION.into()), BUCKETS))
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
            GRPC_REQUESTS.into(),
            None,
            "gRPC calls by method and status code (the refusals of the guard included)".into(),
        );
        recorder.describe_histogram(
            GRPC_DURATION.into(),
            Some(Unit::Seconds),
            "Time to produce the gRPC reply's head, by method and status code".into(),
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

    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = vec![
            Label::new("method", method.to_string()),
            Label::new("route", route.to_string()),
            Label::new("status", status.to_string()),
        ];
        self.count(REQUESTS, DURATION, labels, seconds);
    }

    fn observe_grpc(&self, method: &str, code: &'static str, seconds: f64) {
        let labels = vec![
            Label::new("method", method.to_string()),
            Label::new("code", code),
        ];
        self.count(GRPC_REQUESTS, GRPC_DURATION, labels, seconds);
    }

    fn count(
        &self,
        counter: &'static str,
        histogram: &'static str,
        labels: Vec<Label>,
        seconds: f64,
    ) {
        self.recorder
            .register_counter(&Key::from_parts(counter, labels.clone()), &META)
            .increment(1);
        self.recorder
            .register_histogram(&Key::from_parts(histogram, labels), &META)
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
        self.render_requests()
    }

    /// Renders the request metrics and the process-wide ones, without the
    /// vault gauges (for a router with no vault: `evault witness`).
    pub(crate) fn render_requests(&self) -> String {
        let mut text = self.handle.render();
        if let Some(global) = global_handle() {
            global.run_upkeep();
            text.push_str(&global.render());
        }
        text
    }
}

/// The `method` label: the standard methods by name, anything else `OTHER`
/// (a client must not be able to mint time series).
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
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
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let metrics = &state.metrics;
    let (status, elapsed) = (resp.status().as_u16(), start.elapsed());
    tracing::debug!(%method, %route, status, ?elapsed, "request");
    metrics.observe(method, &route, status, elapsed.as_secs_f64());
    if let Some(VaultFailure(kind)) = resp.extensions().get::<VaultFailure>() {
        metrics.vault_error(kind);
    }
    resp
}

/// Counts and times every gRPC call by its method (one of
/// `access::GRPC_METHODS`, else `unknown`) and its status code, as the
/// guard does for the audit trail: from the reply's head, so a refusal
/// (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) counts as what
/// it is, not as the HTTP 200 that carries it. A streamed reply that fails
/// after its head counts with the status of its head.
pub(crate) async fn track_grpc(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let path = req.uri().path();
    let method = crate::access::GRPC_METHODS
        .iter()
        .find(|(m, _)| *m == path)
        .map_or("unknown", |(m, _)| m);
    let resp = next.run(req).await;
    let (code, _) = crate::guard::grpc_code(&resp);
    let elapsed = start.elapsed();
    tracing::debug!(method, code, ?elapsed, "gRPC call");
    state
        .metrics
        .observe_grpc(method, grpc_code_name(code), elapsed.as_secs_f64());
    if let Some(VaultFailure(kind)) = resp.extensions().get::<VaultFailure>() {
        state.metrics.vault_error(kind);
    }
    resp
}

/// The name gRPC's status code table gives `code`.
fn grpc_code_name(code: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(usize::from(code)).copied().unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_code_names_follow_the_status_code_table() {
        assert_eq!(super::grpc_code_name(tonic::Code::Ok as u16), "OK");
        assert_eq!(
            super::grpc_code_name(tonic::Code::Unauthenticated as u16),
            "UNAUTHENTICATED"
        );
        assert_eq!(
            super::grpc_code_name(tonic::Code::ResourceExhausted as u16),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(super::grpc_code_name(99), "UNKNOWN");
    }

    /// Every `"evault_…"` string literal in the sources of `dir`.
    fn metric_names(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                metric_names(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"evault_").skip(1) {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if piece[name.len()..].starts_with('"') {
                        out.insert(format!("evault_{name}"));
                    }
                }
            }
        }
    }

    #[test]
    fn the_readme_lists_every_metric_the_code_registers() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut names = std::collections::BTreeSet::new();
        for krate in ["server", "vault", "store", "auth", "cli"] {
            metric_names(&root.join("crates").join(krate).join("src"), &mut names);
        }
        // The metrics' target name, not a metric.
        names.remove("evault_server");
        // The PostgreSQL store's table of applied migrations.
        names.remove("evault_schema");
        assert!(names.len() >= 20, "{names:?}");
        let readme = std::fs::read_to_string(root.join("crates/server/README.md")).unwrap();
        let metrics = &readme[readme.find("## Metrics").unwrap()..];
        let metrics = &metrics[..metrics.find("\n## ").unwrap_or(metrics.len())];
        let missing: Vec<_> = names
            .iter()
            .filter(|n| !metrics.contains(&format!("`{n}")))
            .collect();
        assert!(
            missing.is_empty(),
            "crates/server/README.md, \"Metrics\", does not list {missing:?}"
        );
    }
}
