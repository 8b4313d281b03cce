//! The guard: one middleware in front of every route. It authenticates the
//! caller, looks the request up in the permission table, applies the rate
//! limit, and afterwards writes the request's audit event: every request,
//! allowed or refused, leaves exactly one.
//!
//! Evidence puts write their event in the same transaction as the record
//! (the handler marks the reply [`AuditDone`]); other mutations and every
//! refusal are durable before the reply; an event that cannot be made
//! durable turns the reply into a 503: no trace, no service. Reads that were
//! answered are queued for the next group commit without waiting for it.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use evault_auth::{AuthFailure, Identity, Role};
use evault_verify::audit::{AuditEvent, Outcome};
use sha2::{Digest, Sha256};

use crate::access::{self, Access, Operation, Scope};
use crate::problem::{Problem, ProblemDetail};
use crate::{AppState, Authentication};

/// Operations that answer whatever state the audit trail is in.
const PROBES: &[&str] = &["health.live", "health.ready"];

/// The dashboard's immutable assets: public code, in memory, cached by the
/// browser for a year. A page load fetches some forty of them, so they are
/// not rate-limited (a limit of a few per second would break the page for
/// everyone behind one address) and their audit events are offered like a
/// probe's, without holding the reply for a group commit.
const STATIC_ASSETS: &[&str] = &["ui.asset"];

/// How much of a refused request's body is read (and dropped) before the
/// refusal is sent, and for how long at most. A connection closed with
/// unread bytes is reset by the kernel, so a client still sending a small
/// upload would get a broken pipe instead of its 401/403/429; larger or
/// slower bodies are cut off as before.
const REFUSED_BODY_DRAIN: usize = 64 * 1024;
const REFUSED_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Principal recorded for callers without an identity.
pub const ANONYMOUS: &str = "anonymous";
/// Header carrying the request id, echoed on every reply.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who is calling and what the audit event of this request starts from;
/// handlers find it in the request extensions.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// `None`: anonymous (public log read, open routes, or auth disabled).
    pub identity: Option<Identity>,
    pub scope: Scope,
    /// The event as far as it is known before the handler runs.
    pub event: AuditEvent,
}

impl Caller {
    pub fn principal(&self) -> &str {
        &self.event.principal
    }

    /// The caller as a vault reader: the vault decides what it may see.
    pub fn reader(&self) -> evault_vault::Reader {
        let scope = match self.scope {
            Scope::All => evault_vault::ReadScope::All,
            Scope::Own => evault_vault::ReadScope::Own,
        };
        evault_vault::Reader::new(self.principal(), scope)
    }

    /// The finished event for a reply with `status`, its client-controlled
    /// fields bounded.
    pub fn finish(&self, status: u16, note: Option<&AuditNote>) -> AuditEvent {
        let mut e = self.event.clone();
        e.status = status;
        e.outcome = if e.protocol == GRPC {
            grpc_outcome(status)
        } else {
            outcome_for(status)
        };
        if let Some(n) = note {
            if let Some(o) = n.outcome {
                e.outcome = o;
            }
            if let Some(r) = &n.resource {
                e.resource = r.clone();
            }
            if let Some(r) = &n.reason {
                e.reason = Some(r.clone());
            }
        }
        bound_event(&mut e);
        e
    }
}

/// Put on a reply whose audit event the vault already committed with the
/// operation itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuditDone;

/// What a handler adds to its request's audit event.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuditNote {
    pub outcome: Option<Outcome>,
    pub resource: Option<String>,
    pub reason: Option<String>,
}

/// Longest text kept in an audit event field the client controls (path,
/// reason, principal and key id from a token): an event stays far below the
/// audit log's 64 KiB leaf limit however long the request line was.
const MAX_FIELD: usize = 1024;

/// Cuts client-controlled fields to [`MAX_FIELD`] bytes (on a character
/// boundary, marked with `…`), so that no request can make its own audit
/// event unwritable.
pub(crate) fn bound_event(e: &mut AuditEvent) {
    for field in [&mut e.resource, &mut e.principal, &mut e.client] {
        clip(field);
    }
    for field in [&mut e.reason, &mut e.key_id].into_iter().flatten() {
        clip(field);
    }
}

fn clip(s: &mut String) {
    if s.len() <= MAX_FIELD {
        return;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

/// success for 1xx–3xx, unauthenticated for 401, denied for 403 and 429,
/// failed for everything else.
fn outcome_for(status: u16) -> Outcome {
    match status {
        100..=399 => Outcome::Success,
        401 => Outcome::Unauthenticated,
        403 | 429 => Outcome::Denied,
        _ => Outcome::Failed,
    }
}

/// The same for a gRPC status code: OK is success, UNAUTHENTICATED (16)
/// unauthenticated, PERMISSION_DENIED (7) and RESOURCE_EXHAUSTED (8)
/// denied, any other code failed.
fn grpc_outcome(code: u16) -> Outcome {
    match code {
        0 => Outcome::Success,
        16 => Outcome::Unauthenticated,
        7 | 8 => Outcome::Denied,
        _ => Outcome::Failed,
    }
}

/// `protocol` of events of gRPC calls.
pub(crate) const GRPC: &str = "grpc";

/// gRPC metadata a handler sets on an error status to change its audit
/// outcome (e.g. `denied` for another principal's record answered as
/// NOT_FOUND); the guard removes it before the reply leaves.
pub(crate) const GRPC_AUDIT_OUTCOME: &str = "x-evault-audit-outcome";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SHA-256 over what identifies the request's parameters: method, path,
/// the query pairs (sorted, as sent) and the headers that carry request
/// parameters. Never the Authorization header, never body bytes.
fn params_digest(req: &Request) -> String {
    const PARAM_HEADERS: &[&str] = &[
        "content-type",
        "content-length",
        "idempotency-key",
        "x-evault-label",
        "accept",
    ];
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update(b"\n");
    h.update(req.uri().path());
    h.update(b"\n");
    let mut pairs: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    for p in pairs {
        h.update(p);
        h.update(b"&");
    }
    for name in PARAM_HEADERS {
        for v in req.headers().get_all(*name) {
            h.update(b"\n");
            h.update(name);
            h.update(b":");
            h.update(v.as_bytes());
        }
    }
    evault_verify::evidence::hex(&h.finalize())
}

/// Why a request is refused before it reaches its handler.
struct Refusal {
    problem: Problem,
    reason: String,
    /// `WWW-Authenticate` value of a 401 (RFC 6750 §3).
    www_authenticate: Option<String>,
}

impl Refusal {
    fn unauthenticated(f: &AuthFailure) -> Refusal {
        let status = StatusCode::from_u16(f.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut problem = Problem::new(status, f.reason());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            problem = problem.retry_after(5);
        }
        Refusal {
            problem,
            reason: format!("{}: {}", f.code(), f.reason()),
            www_authenticate: (status == StatusCode::UNAUTHORIZED).then(|| f.www_authenticate()),
        }
    }

    fn forbidden(op: &Operation, roles: &BTreeSet<Role>) -> Refusal {
        let needed = match op.access {
            Access::Roles(grants) => grants
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            _ => String::new(),
        };
        let held = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let reason = format!("{} needs role {needed}; the token has {held}", op.name);
        Refusal {
            problem: Problem::new(StatusCode::FORBIDDEN, reason.clone()),
            reason,
            www_authenticate: None,
        }
    }
}

impl Refusal {
    /// The gRPC status equivalent to the refusal's HTTP status.
    fn grpc_status(&self) -> tonic::Status {
        let code = match self.problem.status.as_u16() {
            401 => tonic::Code::Unauthenticated,
            403 => tonic::Code::PermissionDenied,
            429 => tonic::Code::ResourceExhausted,
            503 => tonic::Code::Unavailable,
            _ => tonic::Code::InvalidArgument,
        };
        tonic::Status::new(code, self.reason.clone())
    }
}

/// Which API a guarded router serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

/// The guard of the REST API.
pub(crate) async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    guard_as(Protocol::Http, st, req, next).await
}

/// The guard of the gRPC API: the same table (through
/// [`access::lookup_grpc`]), the same audit trail; refusals are gRPC
/// statuses, and events record the gRPC status code.
pub(crate) async fn grpc_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    guard_as(Protocol::Grpc, st, req, next).await
}

/// A gRPC error reply (trailers-only, as tonic sends them).
fn grpc_reply(status: &tonic::Status) -> Response {
    status.clone().into_http::<axum::body::Body>()
}

/// The gRPC status code of a reply, and its message: from the headers of
/// a trailers-only reply; a reply that streams its status in trailers
/// started fine (OK here; a streaming handler audits its own end).
pub(crate) fn grpc_code(resp: &Response) -> (u16, Option<String>) {
    match tonic::Status::from_header_map(resp.headers()) {
        Some(s) => {
            let msg = (!s.message().is_empty()).then(|| s.message().to_string());
            (s.code() as u16, msg)
        }
        None if resp.status().is_success() => (0, None),
        // Not a gRPC reply at all (e.g. an HTTP/1 request): UNKNOWN.
        None => (2, Some(format!("HTTP status {}", resp.status()))),
    }
}

async fn guard_as(protocol: Protocol, st: AppState, mut req: Request, next: Next) -> Response {
    let time_ms = now_ms();
    let request_id = uuid::Uuid::now_v7().to_string();
    let client = crate::forward::client_address(&st, &req);
    let (op, is_read) = match protocol {
        Protocol::Http => (
            access::lookup(req.method(), req.uri().path()),
            // A preflight (OPTIONS) changes nothing either.
            matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS),
        ),
        Protocol::Grpc => {
            let op = access::lookup_grpc(req.uri().path());
            (op, op.is_some_and(|o| !o.mutating))
        }
    };
    let mut caller = Caller {
        identity: None,
        scope: Scope::All,
        event: AuditEvent {
            id: String::new(),
            leaf_index: 0,
            time: crate::params::format_ms(time_ms),
            request_id: request_id.clone(),
            principal: ANONYMOUS.into(),
            key_id: None,
            auth_method: "none".into(),
            protocol: match protocol {
                Protocol::Http => "http".into(),
                Protocol::Grpc => GRPC.into(),
            },
            operation: op.map_or("unknown", |o| o.name).into(),
            resource: req.uri().path().into(),
            outcome: Outcome::Success,
            status: 0,
            client,
            params_digest: params_digest(&req),
            reason: None,
        },
    };

    // Owned: the request body is not Sync, so no borrow of the request may
    // be held across the awaits below.
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let admitted = admit(&st, authorization, op, &mut caller).await;
    let refused = admitted.is_err();
    let mut resp = match admitted {
        Ok(()) => {
            req.extensions_mut().insert(caller.clone());
            next.run(req).await
        }
        Err(refusal) if protocol == Protocol::Grpc => {
            caller.event.reason = Some(refusal.reason.clone());
            grpc_reply(&refusal.grpc_status())
        }
        Err(refusal) => {
            caller.event.reason = Some(refusal.reason.clone());
            let _ = tokio::time::timeout(
                REFUSED_BODY_WAIT,
                axum::body::to_bytes(req.into_body(), REFUSED_BODY_DRAIN),
            )
            .await;
            let mut resp = refusal.problem.into_response();
            if let Some(v) = refusal
                .www_authenticate
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp
        }
    };

    if resp.extensions().get::<AuditDone>().is_none() {
        let mut note = resp.extensions().get::<AuditNote>().cloned();
        let (status, message) = match protocol {
            Protocol::Http => (
                resp.status().as_u16(),
                resp.extensions()
                    .get::<ProblemDetail>()
                    .map(|d| d.0.clone()),
            ),
            Protocol::Grpc => {
                if let Some(v) = resp.headers_mut().remove(GRPC_AUDIT_OUTCOME)
                    && v.as_bytes() == b"denied"
                {
                    note.get_or_insert_with(AuditNote::default).outcome = Some(Outcome::Denied);
                }
                let (code, message) = grpc_code(&resp);
                if code == tonic::Code::OutOfRange as u16
                    && message
                        .as_deref()
                        .is_some_and(|m| m.contains("message length too large"))
                {
                    // tonic says OUT_OF_RANGE for a message over the limit;
                    // gRPC's status code table says RESOURCE_EXHAUSTED.
                    let status = tonic::Status::resource_exhausted(message.unwrap_or_default());
                    resp = grpc_reply(&status);
                    (
                        tonic::Code::ResourceExhausted as u16,
                        Some(status.message().to_string()),
                    )
                } else {
                    (code, message)
                }
            }
        };
        let mut event = caller.finish(status, note.as_ref());
        if event.reason.is_none() && event.outcome != Outcome::Success {
            event.reason = message;
            bound_event(&mut event);
        }
        // Reads that were not refused are queued for the next group commit
        // rather than awaited: they change nothing, and an fsync on every
        // read's path would cost every auditor a disk round trip. Mutations
        // and refusals are durable before the reply.
        let answered_read =
            is_read && !refused && matches!(event.outcome, Outcome::Success | Outcome::Failed);
        // Probes must answer when the audit trail cannot be written (a full
        // disk, a stopped sequencer): that is what they report. Their event
        // is offered without waiting and dropped (counted) if it cannot be
        // queued.
        // A standby answers its own metrics scrape (each node's numbers are
        // its own) but cannot write its event: offered like a probe's, and
        // counted as dropped.
        let standby_local =
            |o: &Operation| o.name == "metrics.read" && !st.vault.role().is_leader();
        let probe = op.is_some_and(|o| {
            PROBES.contains(&o.name) || STATIC_ASSETS.contains(&o.name) || standby_local(o)
        });
        let written = if probe {
            st.vault.offer_audit(event);
            Ok(())
        } else if answered_read {
            st.vault.queue_audit(event).await
        } else {
            st.vault.record_audit(event).await
        };
        if let Err(e) = written {
            tracing::error!(request_id, "audit event not written, request refused: {e}");
            let full = e.is_storage_full();
            resp = if full && protocol == Protocol::Grpc {
                grpc_reply(&tonic::Status::resource_exhausted(
                    "the vault's storage is full; the audit trail cannot be written; the call \
                     was refused",
                ))
            } else if full {
                Problem::storage_full().into_response()
            } else if let Some(why) = st.vault.role().refusal() {
                // A standby writes no audit event, so it takes no calls:
                // say which node does.
                if protocol == Protocol::Grpc {
                    grpc_reply(&tonic::Status::unavailable(why))
                } else {
                    Problem::new(StatusCode::SERVICE_UNAVAILABLE, why)
                        .retry_after(1)
                        .into_response()
                }
            } else if protocol == Protocol::Grpc {
                grpc_reply(&tonic::Status::unavailable(
                    "the audit trail cannot be written; the call was refused",
                ))
            } else {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the audit trail cannot be written; the request was refused",
                )
                .retry_after(1)
                .into_response()
            };
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// Authenticates, authorises and rate-limits; fills in who the caller is.
async fn admit(
    st: &AppState,
    authorization: Option<HeaderValue>,
    op: Option<&'static Operation>,
    caller: &mut Caller,
) -> Result<(), Refusal> {
    let authenticator = match &st.opts.auth {
        Authentication::InsecureDisabled => {
            // Development only: everyone may do everything, as `anonymous`.
            return Ok(());
        }
        Authentication::Tokens(a) => a,
    };
    let identity = match authenticator
        .authenticate(authorization.as_ref().map(HeaderValue::as_bytes))
        .await
    {
        Ok(identity) => identity,
        // A route anyone may read answers anyone: a token that does not
        // verify (or an OIDC issuer that does not answer) changes nothing
        // about what it returns, so it is served as to a caller without
        // one, and the audit event says why.
        Err(f) if op.is_some_and(|o| !access::needs_token(o, st.opts.public_log_read)) => {
            caller.event.reason = Some(format!(
                "token not accepted ({}: {}); answered as to a caller without one",
                f.code(),
                f.reason()
            ));
            None
        }
        Err(f) => return Err(Refusal::unauthenticated(&f)),
    };
    if let Some(id) = &identity {
        caller.event.principal = id.principal.clone();
        caller.event.key_id = id.key_id.clone();
        caller.event.auth_method = id.method.as_str().into();
    }
    caller.identity = identity;

    // Least privilege: only a role of the table widens the reader's scope.
    // A caller of the public log data (or of an open route) reads as its
    // own principal, so the vault gives it only what is public: e.g. never
    // the audit log's entry bundles, whatever path reached the handler.
    caller.scope = Scope::Own;
    if let Some(op) = op {
        match (op.access, &caller.identity) {
            (Access::Open, _) => {}
            (Access::PublicLog, None) if !st.opts.public_log_read => {
                return Err(Refusal::unauthenticated(&AuthFailure::MissingCredentials));
            }
            (Access::PublicLog, _) => {}
            (Access::Roles(_), None) => {
                return Err(Refusal::unauthenticated(&AuthFailure::MissingCredentials));
            }
            (Access::Roles(_), Some(id)) => match access::scope_for(op, id.roles.iter().copied()) {
                Some(scope) => caller.scope = scope,
                None => return Err(Refusal::forbidden(op, &id.roles)),
            },
        }
    }
    if caller.identity.is_none() {
        caller
            .event
            .reason
            .get_or_insert_with(|| "no credentials presented".into());
    }

    let unlimited = op.is_some_and(|o| STATIC_ASSETS.contains(&o.name));
    if let Some(limiter) = st.limiter.as_ref().filter(|_| !unlimited) {
        let key = match &caller.identity {
            Some(id) => id.principal.clone(),
            None => format!("{ANONYMOUS}@{}", client_ip(&caller.event.client)),
        };
        if let Err(wait) = limiter.check(&key, std::time::Instant::now()) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
            let reason = format!("rate limit of {key} exceeded; retry in {secs} s");
            return Err(Refusal {
                problem: Problem::new(StatusCode::TOO_MANY_REQUESTS, reason.clone())
                    .retry_after(secs),
                reason,
                www_authenticate: None,
            });
        }
    }
    Ok(())
}

fn client_ip(client: &str) -> &str {
    client.rsplit_once(':').map_or(client, |(ip, _)| ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_status() {
        assert_eq!(outcome_for(200), Outcome::Success);
        assert_eq!(outcome_for(201), Outcome::Success);
        assert_eq!(outcome_for(401), Outcome::Unauthenticated);
        assert_eq!(outcome_for(403), Outcome::Denied);
        assert_eq!(outcome_for(429), Outcome::Denied);
        assert_eq!(outcome_for(400), Outcome::Failed);
        assert_eq!(outcome_for(404), Outcome::Failed);
        assert_eq!(outcome_for(503), Outcome::Failed);
    }

    #[test]
    fn long_fields_are_clipped_on_a_char_boundary() {
        let mut s = "é".repeat(MAX_FIELD);
        clip(&mut s);
        assert!(s.len() <= MAX_FIELD + '…'.len_utf8());
        assert!(s.ends_with('…'));
        let mut short = "abc".to_string();
        clip(&mut short);
        assert_eq!(short, "abc");
    }

    #[test]
    fn digest_ignores_authorization_and_query_order() {
        let make = |uri: &str, auth: &str| {
            Request::builder()
                .uri(uri)
                .header("authorization", auth)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let a = params_digest(&make("/x?b=2&a=1", "Bearer one"));
        let b = params_digest(&make("/x?a=1&b=2", "Bearer two"));
        assert_eq!(a, b);
        assert_ne!(a, params_digest(&make("/x?a=1&b=3", "Bearer one")));
        assert_eq!(a.len(), 64);
    }
}
