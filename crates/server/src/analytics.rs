//! `/api/v1/analytics`: summaries of the typed analytics events
//! (`application/vnd.evault.analytics+json` records), aggregated by the
//! store from what it holds, so they are the same after a restart.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, State};
use evault_vault::{AnalyticsGroup, AnalyticsQuery, Stats};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::guard::Caller;
use crate::params::{QueryParams, format_ms};
use crate::problem::{Problem, ProblemBody};

/// Longest `source` or `kind` filter: the longest an event may carry.
const MAX_FILTER: usize = evault_vault::analytics::MAX_SOURCE;

/// Count, minimum, maximum and mean of a set of numbers.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[schema(as = AnalyticsStats)]
pub struct StatsReply {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl From<Stats> for StatsReply {
    fn from(s: Stats) -> Self {
        StatsReply {
            count: s.count,
            min: s.min,
            max: s.max,
            mean: s.mean,
        }
    }
}

/// The events of one source and kind.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = AnalyticsGroup)]
pub struct AnalyticsGroupReply {
    pub source: String,
    pub kind: String,
    /// Events in the group.
    pub count: u64,
    /// Earliest event `timestamp`: RFC 3339, UTC, millisecond precision.
    pub first: String,
    /// Latest event `timestamp`.
    pub last: String,
    /// Over the events that have a `value`; null if none has.
    pub value: Option<StatsReply>,
    /// The unit, if every event of the group has the same one; else null.
    pub unit: Option<String>,
    /// Per metric name, over the events that have that metric.
    pub metrics: BTreeMap<String, StatsReply>,
}

impl From<AnalyticsGroup> for AnalyticsGroupReply {
    fn from(g: AnalyticsGroup) -> Self {
        AnalyticsGroupReply {
            source: g.source,
            kind: g.kind,
            count: g.count,
            first: format_ms(g.first_ms),
            last: format_ms(g.last_ms),
            value: g.value.map(StatsReply::from),
            unit: g.unit,
            metrics: g.metrics.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }
}

/// The filters the summary was computed with.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsFilters {
    pub source: Option<String>,
    pub kind: Option<String>,
    /// Inclusive, RFC 3339 UTC.
    pub since: Option<String>,
    /// Exclusive, RFC 3339 UTC.
    pub until: Option<String>,
    /// Set when the caller may only see its own events (role ingester).
    pub ingested_by: Option<String>,
}

impl From<&AnalyticsQuery> for AnalyticsFilters {
    /// The filters as the vault applied them.
    fn from(q: &AnalyticsQuery) -> Self {
        AnalyticsFilters {
            source: q.source.clone(),
            kind: q.kind.clone(),
            since: q.since_ms.map(format_ms),
            until: q.until_ms.map(format_ms),
            ingested_by: q.ingested_by.clone(),
        }
    }
}

/// The summary: one group per source and kind, ordered by both.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AnalyticsSummary {
    pub groups: Vec<AnalyticsGroupReply>,
    pub filters: AnalyticsFilters,
}

/// A `source` or `kind` filter: 1 to 128 bytes when given.
fn take_name(q: &mut QueryParams, name: &str) -> Result<Option<String>, Problem> {
    match q.take_one(name)? {
        Some(v) if v.is_empty() || v.len() > MAX_FILTER => Err(Problem::bad_request(format!(
            "{name} must be 1 to {MAX_FILTER} bytes"
        ))),
        v => Ok(v),
    }
}

/// Summarise analytics events.
///
/// Per source and kind: the number of events, the span of their
/// timestamps, count/min/max/mean of `value` and of each metric, and the
/// unit if all agree. All given filters must match; `since` (inclusive)
/// and `until` (exclusive) are compared with the event's own `timestamp`.
/// An ingester sees only the events it submitted.
#[utoipa::path(
    get,
    path = "/api/v1/analytics/summary",
    tag = "analytics",
    params(
        ("source" = Option<String>, Query, description = "Exact event source", min_length = 1, max_length = 128),
        ("kind" = Option<String>, Query, description = "Exact event kind", min_length = 1, max_length = 128),
        ("since" = Option<String>, Query, description = "RFC 3339; events timestamped at or after", format = DateTime),
        ("until" = Option<String>, Query, description = "RFC 3339; events timestamped before", format = DateTime),
    ),
    responses(
        (status = 200, description = "The summary", body = AnalyticsSummary),
        (status = 400, description = "Unknown parameter, or a bad filter or time", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn analytics_summary(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    mut q: QueryParams,
) -> Result<Json<AnalyticsSummary>, Problem> {
    let source = take_name(&mut q, "source")?;
    let kind = take_name(&mut q, "kind")?;
    let since_ms = q.take_time("since")?;
    let until_ms = q.take_time("until")?;
    q.finish()?;
    let query = AnalyticsQuery {
        source,
        kind,
        since_ms,
        until_ms,
        ..AnalyticsQuery::default()
    };
    let summary = st.vault.analytics_summary(&caller.reader(), query).await?;
    Ok(Json(AnalyticsSummary {
        filters: AnalyticsFilters::from(&summary.query),
        groups: summary.groups.into_iter().map(Into::into).collect(),
    }))
}
