//! RFC 9457 problem details: the one shape every error reply has.
//!
//! Handlers return [`Problem`]; vault errors map onto it in one place
//! ([`From<VaultError>`]); whatever axum or hyper produce on their own (a
//! rejected extractor, the 405 of a known path, a caught panic) is rewritten
//! into the same shape by [`normalize_errors`]. Internal failures are logged
//! here and answered with a generic detail: the client learns that something
//! broke, never what the database or the filesystem said.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use evault_store::StoreError;
use evault_vault::VaultError;
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Detail of every internal error: the cause goes to the log only.
const INTERNAL_DETAIL: &str = "internal error; the cause has been logged on the server";

/// The failure kind of stored data that failed its integrity check
/// (gRPC: `DATA_LOSS`).
pub(crate) const INTEGRITY: &str = "integrity";

/// An error reply (RFC 9457). `type` is always `about:blank`, so `title`
/// is the status's reason phrase and `detail` says what went wrong.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(
    as = Problem,
    example = json!({"type": "about:blank", "title": "Bad Request", "status": 400,
                     "detail": "limit must be an integer from 1 to 1000"})
)]
pub struct ProblemBody {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// 410 Gone of an erased payload: the id of the tombstone record that
    /// erased it (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tombstone_id: Option<String>,
}

/// Marks a response caused by a failure inside the vault or its store, so
/// the metrics layer can count it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VaultFailure(pub &'static str);

/// The `detail` of an error reply, kept on the response for the audit
/// trail (the body itself is streamed to the client).
#[derive(Clone, Debug)]
pub(crate) struct ProblemDetail(pub String);

/// An error on its way to becoming a problem+json reply.
#[derive(Debug)]
pub struct Problem {
    /// HTTP status of the reply; also its `status` and, by reason phrase,
    /// its `title`.
    pub status: StatusCode,
    /// The reply's `detail`: what went wrong, for a human.
    pub detail: String,
    pub(crate) failure: Option<&'static str>,
    retry_after: Option<u32>,
    /// The vault refused to show something that exists: answered as a
    /// 404, audited as denied with this reason.
    pub(crate) denied: Option<String>,
    /// The tombstone of an erased payload (410), for the body.
    pub(crate) tombstone_id: Option<String>,
}

impl Problem {
    /// A problem with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            failure: None,
            retry_after: None,
            denied: None,
            tombstone_id: None,
        }
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    /// Names the tombstone of an erased payload in the body.
    fn with_tombstone(mut self, id: String) -> Problem {
        self.tombstone_id = Some(id);
        self
    }

    /// A 400 Bad Request: the request itself is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// A 404 Not Found.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// An internal failure: logged with its cause, answered generically.
    pub(crate) fn internal(kind: &'static str, cause: &dyn std::fmt::Display) -> Problem {
        tracing::error!(kind, "internal error: {cause}");
        Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: INTERNAL_DETAIL.into(),
            failure: Some(kind),
            retry_after: None,
            denied: None,
            tombstone_id: None,
        }
    }

    /// The RFC 9457 body of the reply.
    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").into(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            tombstone_id: self.tombstone_id.clone(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(kind) = self.failure {
            resp.extensions_mut().insert(VaultFailure(kind));
        }
        if let Some(reason) = self.denied {
            resp.extensions_mut().insert(crate::guard::AuditNote {
                outcome: Some(evault_verify::audit::Outcome::Denied),
                reason: Some(reason),
                ..Default::default()
            });
        }
        resp.extensions_mut().insert(ProblemDetail(self.detail));
        resp
    }
}

impl Problem {
    /// A 507 Insufficient Storage: the disk is full; nothing was written
    /// and the same request may succeed later.
    pub fn storage_full() -> Problem {
        Problem {
            status: StatusCode::INSUFFICIENT_STORAGE,
            detail: "the vault's storage is full; nothing was written; retry once space is freed"
                .into(),
            failure: Some("storage_full"),
            retry_after: Some(5),
            denied: None,
            tombstone_id: None,
        }
    }
}

impl From<VaultError> for Problem {
    fn from(e: VaultError) -> Problem {
        if e.is_storage_full() {
            tracing::warn!("{e}");
            return Problem::storage_full();
        }
        match e {
            VaultError::Invalid(why) => Problem::bad_request(why),
            VaultError::TooLarge { limit } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("payload exceeds the limit of {limit} bytes"),
            ),
            VaultError::NotFound(what) => Problem::not_found(format!("{what} not found")),
            VaultError::Conflict(why) => Problem::new(StatusCode::CONFLICT, why),
            VaultError::Gone { id, tombstone_id } => Problem::new(
                StatusCode::GONE,
                format!("the payload of evidence {id} was erased (tombstone {tombstone_id})"),
            )
            .with_tombstone(tombstone_id),
            VaultError::Hidden { what, reason } => Problem {
                denied: Some(reason),
                ..Problem::not_found(format!("{what} not found"))
            },
            VaultError::Store(StoreError::TileUnavailable(t)) => {
                Problem::not_found(format!("{} is not available", t.path()))
            }
            e @ (VaultError::Unavailable(_) | VaultError::Task(_) | VaultError::StorageFull(_)) => {
                tracing::warn!("{e}");
                Problem {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    detail: "the vault is unavailable; retry later".into(),
                    failure: Some("unavailable"),
                    retry_after: Some(1),
                    denied: None,
                    tombstone_id: None,
                }
            }
            // Says which log, never which token or why: that is for the
            // operator's log, where the checkpointer wrote it.
            VaultError::SignerUnavailable(why) => Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: why,
                failure: Some("signer_unavailable"),
                retry_after: Some(5),
                denied: None,
                tombstone_id: None,
            },
            // The vault has logged and counted it; a 500 (the server's
            // storage is at fault, not the request) that names what, not
            // where.
            VaultError::Corrupt { what, .. } => Problem {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                detail: format!(
                    "the stored {} failed its integrity check on the server and is not \
                     served; the operator has been alerted",
                    what.replace('_', " ")
                ),
                failure: Some(INTEGRITY),
                retry_after: None,
                denied: None,
                tombstone_id: None,
            },
            VaultError::Inconsistent(why) => Problem::internal("inconsistent", &why),
            VaultError::Proof(e) => Problem::internal("inconsistent", &e),
            VaultError::Store(e) => Problem::internal("store", &e),
            VaultError::Io(e) => Problem::internal("io", &e),
            e @ VaultError::Key { .. } => Problem::internal("key", &e),
            VaultError::Signing(e) => Problem::internal("signing", &e),
            // An operator's policy refuses it (e.g. a Sigstore identity
            // policy): well-formed, but not acceptable; the text says why.
            VaultError::Refused(why) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, why),
            // Only long operations are cancelled, by their own caller.
            VaultError::Cancelled => {
                Problem::new(StatusCode::CONFLICT, "the operation was cancelled")
            }
        }
    }
}

/// Rewrites every error reply that is not problem+json yet (axum's own
/// rejections, 405, a caught panic) into one, keeping status and headers.
pub(crate) async fn normalize_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let detail = if status.is_server_error() {
        tracing::error!("{status} without a problem body");
        INTERNAL_DETAIL.to_string()
    } else {
        // axum's rejection texts are short and describe the client's mistake.
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&text).trim().to_string();
        if !text.is_empty() {
            text
        } else if status == StatusCode::METHOD_NOT_ALLOWED {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok());
            match allowed {
                Some(a) if !a.is_empty() => format!("method not allowed here; allowed: {a}"),
                _ => "method not allowed here".into(),
            }
        } else {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        }
    };
    let problem = Problem::new(status, detail);
    let body = serde_json::to_vec(&problem.body()).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.extensions.insert(ProblemDetail(problem.detail));
    Response::from_parts(parts, Body::from(body))
}

/// The 404 of every path no route matches.
pub(crate) async fn not_found(req: Request) -> Problem {
    Problem::not_found(format!("no resource at {}", req.uri().path()))
}

/// Turns a caught handler panic into a plain 500 (then made a problem).
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    Problem::internal("panic", &"a request handler panicked").into_response()
}
