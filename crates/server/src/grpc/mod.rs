//! The gRPC API (`proto/evault/v1`): tonic services over the same vault,
//! served as an axum router behind the same guard as REST, so a call is
//! authenticated, allowed, scoped and audited exactly like the REST request
//! of the same operation (`access::GRPC_METHODS`). Also serves the gRPC
//! health service and server reflection.

mod audit;
mod evidence;
mod health;
mod log;
mod tasks;

use axum::Router;
use axum::http::StatusCode;
use evault_proto::v1 as pb;
use evault_verify::Evidence;
use tonic::{Code, Status};

use crate::AppState;
use crate::guard::{Caller, GRPC_AUDIT_OUTCOME};
use crate::problem::Problem;

/// Largest gRPC message accepted (a Put's payload and its metadata).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The gRPC services, with health and reflection, over `state`.
pub(crate) fn router(state: AppState) -> Router {
    // SERVING exactly while /readyz says ready.
    let health = health::service(state.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(evault_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let mut routes = tonic::service::Routes::default()
        .add_service(
            pb::evidence_service_server::EvidenceServiceServer::new(evidence::Service(
                state.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE),
        )
        .add_service(pb::log_service_server::LogServiceServer::new(log::Service(
            state.clone(),
        )))
        .add_service(pb::audit_service_server::AuditServiceServer::new(
            audit::Service(state.clone()),
        ))
        .add_service(pb::task_service_server::TaskServiceServer::new(
            tasks::Service(state.clone()),
        ))
        .add_service(health);
    match reflection.build_v1() {
        Ok(s) => routes = routes.add_service(s),
        Err(e) => tracing::error!("gRPC reflection is off: {e}"),
    }
    match reflection_v1alpha(evault_proto::FILE_DESCRIPTOR_SET) {
        Ok(s) => routes = routes.add_service(s),
        Err(e) => tracing::error!("gRPC reflection (v1alpha) is off: {e}"),
    }
    routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::guard::grpc_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::forward::forward_grpc,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::metrics::track_grpc,
        ))
}

/// The v1alpha reflection service, which older clients (grpcurl before
/// 1.9, many language runtimes) still ask for.
fn reflection_v1alpha(
    set: &'static [u8],
) -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(set)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
}

/// The caller the guard admitted (always there behind the guard).
fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the call did not pass the guard"))
}

/// The gRPC status of a REST problem: one mapping for both APIs.
impl From<Problem> for Status {
    fn from(p: Problem) -> Status {
        let code = match p.status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INSUFFICIENT_STORAGE => Code::ResourceExhausted,
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => Code::FailedPrecondition,
            // An erased payload: its detail names the tombstone's id.
            StatusCode::GONE => Code::NotFound,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            _ if p.failure == Some(crate::problem::INTEGRITY) => Code::DataLoss,
            s if s.is_server_error() => Code::Internal,
            _ => Code::Unknown,
        };
        let mut status = Status::new(code, p.detail);
        if p.denied.is_some() {
            // Another principal's entry: NOT_FOUND for the client, denied
            // in the audit trail (the guard reads and strips this).
            status.metadata_mut().insert(
                GRPC_AUDIT_OUTCOME,
                tonic::metadata::MetadataValue::from_static("denied"),
            );
        }
        status
    }
}

/// tonic reports a message over the size limit as OUT_OF_RANGE; gRPC's
/// status code table (and our docs) say RESOURCE_EXHAUSTED. The guard
/// fixes unary replies; streams pass their input's error through this.
fn size_status(s: Status) -> Status {
    if s.code() == Code::OutOfRange && s.message().contains("message length too large") {
        Status::resource_exhausted(s.message().to_string())
    } else {
        s
    }
}

fn vault_status(e: evault_vault::VaultError) -> Status {
    Status::from(Problem::from(e))
}

fn evidence_msg(e: Evidence) -> pb::Evidence {
    pb::Evidence {
        id: e.id,
        leaf_index: e.leaf_index,
        content_type: e.content_type,
        sha256: e.sha256,
        size: e.size,
        labels: e.labels.into_iter().collect(),
        ingested_at: e.ingested_at,
        ingested_by: e.ingested_by,
        idempotency_key: e.idempotency_key.unwrap_or_default(),
    }
}

/// An optional RFC 3339 time field (empty: none).
fn time_field(name: &str, s: &str) -> Result<Option<i64>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    crate::params::parse_rfc3339_ms(s)
        .map(Some)
        .ok_or_else(|| Status::invalid_argument(format!("{name} {s:?} is not an RFC 3339 time")))
}

/// An optional string field of a request (empty: none).
fn filter(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A page size: 0 is the default, more than the maximum is refused.
fn limit_field(limit: u32) -> Result<u32, Status> {
    match limit {
        0 => Ok(crate::params::DEFAULT_LIMIT),
        n if n <= crate::params::MAX_LIMIT => Ok(n),
        n => Err(Status::invalid_argument(format!(
            "limit {n} is larger than {}",
            crate::params::MAX_LIMIT
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_data_that_fails_its_check_is_data_loss_and_says_no_more() {
        let e = evault_vault::VaultError::Corrupt {
            what: "audit_event",
            detail: "audit event 7: secret column values".into(),
        };
        let problem = Problem::from(e);
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            problem
                .detail
                .contains("audit event failed its integrity check")
        );
        assert!(!problem.detail.contains("secret"));
        let status = Status::from(problem);
        assert_eq!(status.code(), Code::DataLoss);
        assert!(!status.message().contains("secret"));
    }
}
