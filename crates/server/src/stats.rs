//! Counts for the dashboard's charts: records per time bucket and per
//! content type, audit events per outcome. Read from the store's time
//! indexes; an ingester counts only what it submitted.

use axum::Json;
use axum::extract::{Extension, State};
use evault_vault::{ReadScope, StatsQuery};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::guard::Caller;
use crate::params::{QueryParams, format_ms};
use crate::problem::{Problem, ProblemBody};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Content types listed, the most frequent first.
const TOP_CONTENT_TYPES: u32 = 50;

/// Records ingested in one bucket.
#[derive(Serialize, ToSchema)]
pub struct StatsBucket {
    /// Bucket start: RFC 3339, UTC.
    start: String,
    count: u64,
}

/// Records of one content type.
#[derive(Serialize, ToSchema)]
pub struct ContentTypeCount {
    content_type: String,
    count: u64,
}

/// Record counts over a window.
#[derive(Serialize, ToSchema)]
pub struct EvidenceStatsReply {
    /// `hour` or `day`.
    bucket: String,
    /// Inclusive, RFC 3339 UTC.
    since: String,
    /// Exclusive, RFC 3339 UTC.
    until: String,
    /// Non-empty buckets only, in time order.
    buckets: Vec<StatsBucket>,
    /// At most 50, most records first.
    content_types: Vec<ContentTypeCount>,
    /// Records in the window.
    total: u64,
    /// Set when the caller counts only its own records (role ingester).
    ingested_by: Option<String>,
}

/// Audit events with one outcome.
#[derive(Serialize, ToSchema)]
pub struct OutcomeCount {
    outcome: String,
    count: u64,
}

/// Audit events over a window, per outcome.
#[derive(Serialize, ToSchema)]
pub struct AuditStatsReply {
    since: String,
    until: String,
    /// Ordered by outcome.
    outcomes: Vec<OutcomeCount>,
    total: u64,
}

/// The window: `since` and `until` given or their defaults (`until` now,
/// `since` `default_span` before it).
fn window(q: &mut QueryParams, default_span: i64) -> Result<(i64, i64), Problem> {
    let since = q.take_time("since")?;
    let until = q.take_time("until")?;
    let until = until.unwrap_or_else(now_ms);
    let since = since.unwrap_or(until.saturating_sub(default_span));
    if since >= until {
        return Err(Problem::bad_request("since must be before until"));
    }
    if since < 0 {
        return Err(Problem::bad_request(
            "since must not be before 1970-01-01T00:00:00Z",
        ));
    }
    Ok((since, until))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Records per hour or day, and per content type.
///
/// Counts the records ingested in `since..until` (default: the last 24
/// hours for `bucket=hour`, the last 30 days for `bucket=day`) per bucket
/// and for the 50 most frequent content types. At most 1000 buckets. An
/// ingester counts only the records it submitted.
#[utoipa::path(
    get,
    path = "/api/v1/stats/evidence",
    tag = "evidence",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339; records ingested at or after", format = DateTime),
        ("until" = Option<String>, Query, description = "RFC 3339; records ingested before (default now)", format = DateTime),
        ("bucket" = Option<String>, Query, description = "`hour` (default) or `day`", pattern = "^(hour|day)$"),
    ),
    responses(
        (status = 200, description = "The counts", body = EvidenceStatsReply),
        (status = 400, description = "Unknown parameter, bad time or bucket, or more than 1000 buckets", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn evidence_stats(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<EvidenceStatsReply>, Problem> {
    let bucket = q.take_one("bucket")?.unwrap_or_else(|| "hour".into());
    let (bucket_ms, span) = match bucket.as_str() {
        "hour" => (HOUR_MS, DAY_MS),
        "day" => (DAY_MS, 30 * DAY_MS),
        _ => return Err(Problem::bad_request("bucket must be hour or day")),
    };
    let (since_ms, until_ms) = window(&mut q, span)?;
    q.finish()?;
    let reader = caller.reader();
    let query = StatsQuery {
        since_ms,
        until_ms,
        bucket_ms,
        ingested_by: None,
        top_content_types: TOP_CONTENT_TYPES,
    };
    let stats = st.vault.evidence_stats(&reader, query).await?;
    Ok(Json(EvidenceStatsReply {
        bucket,
        since: format_ms(since_ms),
        until: format_ms(until_ms),
        buckets: stats
            .buckets
            .into_iter()
            .map(|(start, count)| StatsBucket {
                start: format_ms(start),
                count,
            })
            .collect(),
        content_types: stats
            .content_types
            .into_iter()
            .map(|(content_type, count)| ContentTypeCount {
                content_type,
                count,
            })
            .collect(),
        total: stats.total,
        ingested_by: (reader.scope() == ReadScope::Own).then(|| reader.principal().to_string()),
    }))
}

/// Audit events per outcome.
///
/// Counts the audit events of `since..until` (default: the last 24
/// hours; at most 31 days) per outcome (`success`, `denied`,
/// `unauthenticated`, `failed`).
#[utoipa::path(
    get,
    path = "/api/v1/audit/stats",
    tag = "audit",
    params(
        ("since" = Option<String>, Query, description = "RFC 3339; events at or after", format = DateTime),
        ("until" = Option<String>, Query, description = "RFC 3339; events before (default now)", format = DateTime),
    ),
    responses(
        (status = 200, description = "The counts", body = AuditStatsReply),
        (status = 400, description = "Unknown parameter, bad time, or a window longer than 31 days", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The audit trail is disabled", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn audit_stats(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<AuditStatsReply>, Problem> {
    let (since_ms, until_ms) = window(&mut q, DAY_MS)?;
    q.finish()?;
    let outcomes = st
        .vault
        .audit_outcomes(&caller.reader(), since_ms, until_ms)
        .await?;
    Ok(Json(AuditStatsReply {
        since: format_ms(since_ms),
        until: format_ms(until_ms),
        total: outcomes.iter().map(|(_, n)| n).sum(),
        outcomes: outcomes
            .into_iter()
            .map(|(outcome, count)| OutcomeCount { outcome, count })
            .collect(),
    }))
}
