//! `evault.v1.AuditService`: the audit trail, queried like `GET /api/v1/audit`.

use evault_vault::AuditQuery;
use evault_verify::audit::{AuditEvent, Outcome};
use tonic::{Request, Response, Status};

use super::{caller, filter, limit_field, pb, time_field, vault_status};
use crate::AppState;
use crate::params::{CursorKind, decode_cursor, encode_cursor};

pub(crate) struct Service(pub AppState);

fn event_msg(e: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id,
        leaf_index: e.leaf_index,
        time: e.time,
        request_id: e.request_id,
        principal: e.principal,
        key_id: e.key_id.unwrap_or_default(),
        auth_method: e.auth_method,
        protocol: e.protocol,
        operation: e.operation,
        resource: e.resource,
        outcome: e.outcome.as_str().to_string(),
        status: u32::from(e.status),
        client: e.client,
        params_digest: e.params_digest,
        reason: e.reason.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Service {
    async fn query(
        &self,
        req: Request<pb::AuditQueryRequest>,
    ) -> Result<Response<pb::AuditQueryResponse>, Status> {
        let caller = caller(&req)?;
        let q = req.into_inner();
        let outcome = match filter(q.outcome) {
            None => None,
            Some(o) => Some(
                o.parse::<Outcome>()
                    .map(|o| o.as_str().to_string())
                    .map_err(|_| {
                        Status::invalid_argument(format!(
                            "outcome {o:?}: expected success, denied, unauthenticated or failed"
                        ))
                    })?,
            ),
        };
        let after_index = match q.cursor.as_str() {
            "" => None,
            c => Some(decode_cursor(CursorKind::Audit, c)?),
        };
        let page = self
            .0
            .vault
            .audit_list(
                &caller.reader(),
                AuditQuery {
                    principal: filter(q.principal),
                    operation: filter(q.operation),
                    outcome,
                    since_ms: time_field("since", &q.since)?,
                    until_ms: time_field("until", &q.until)?,
                    after_index,
                    limit: limit_field(q.limit)?,
                },
            )
            .await
            .map_err(vault_status)?;
        Ok(Response::new(pb::AuditQueryResponse {
            items: page.items.into_iter().map(event_msg).collect(),
            next_cursor: page
                .next
                .map(|n| encode_cursor(CursorKind::Audit, n))
                .unwrap_or_default(),
        }))
    }
}
