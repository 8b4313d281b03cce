//! Who am I, and service-account administration (role admin). The keystore
//! itself (a file on the server's machine, or the database's `keystore`
//! table on PostgreSQL) is edited with `evault sa …`; these routes show
//! what is in force and reload it.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use evault_auth::KeySourceError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::guard::Caller;
use crate::problem::{Problem, ProblemBody};
use crate::{AppState, Authentication};

/// The caller as the server sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Whoami {
    pub principal: String,
    /// Roles this token carries.
    pub roles: Vec<String>,
    /// `service-account`, `oidc` or `none`.
    pub auth_method: String,
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// A service-account key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccountInfo {
    pub key_id: String,
    pub principal: String,
    pub roles: Vec<String>,
    /// RFC 3339; absent for a key that does not expire.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub expired: bool,
}

/// The keys in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceAccounts {
    /// Where they were loaded from: the keystore file, or on PostgreSQL
    /// the database's `keystore` table (every node reads the same).
    pub path: String,
    pub keys: Vec<ServiceAccountInfo>,
}

/// Who the caller is.
///
/// The principal, roles, authentication method and key id the server
/// derived from the bearer token: a way to check a token before using it.
#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "identity",
    responses(
        (status = 200, description = "The caller's principal, roles and how it authenticated", body = Whoami),
        (status = 401, description = "No valid token", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<Whoami> {
    let roles = caller
        .identity
        .as_ref()
        .map(|id| id.roles.iter().map(|r| r.as_str().to_string()).collect())
        .unwrap_or_default();
    Json(Whoami {
        principal: caller.event.principal.clone(),
        roles,
        auth_method: caller.event.auth_method.clone(),
        key_id: caller.event.key_id.clone(),
    })
}

fn authenticator(st: &AppState) -> Result<&evault_auth::Authenticator, Problem> {
    match &st.opts.auth {
        Authentication::Tokens(a) => Ok(a),
        Authentication::InsecureDisabled => Err(Problem::not_found(
            "authentication is disabled on this server: there are no service accounts",
        )),
    }
}

fn service_accounts(a: &evault_auth::Authenticator) -> ServiceAccounts {
    let store = a.keystore();
    let now = std::time::SystemTime::now();
    let keys = store
        .keys()
        .iter()
        .map(|k| ServiceAccountInfo {
            key_id: k.key_id.clone(),
            principal: k.principal.clone(),
            roles: k.roles.iter().map(|r| r.as_str().to_string()).collect(),
            expires_at: k
                .expires_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            expired: k.expires_at.is_some_and(|t| t <= now),
        })
        .collect();
    ServiceAccounts {
        path: store.describe(),
        keys,
    }
}

/// The service-account keys in force (never their secrets).
///
/// Key id, principal, roles and expiry of every key the keystore holds
/// now (role admin). Secrets never leave the keystore.
#[utoipa::path(
    get,
    path = "/api/v1/admin/service-accounts",
    tag = "identity",
    responses(
        (status = 200, description = "Keys in force", body = ServiceAccounts),
        (status = 404, description = "Authentication is disabled", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn list_service_accounts(
    State(st): State<AppState>,
) -> Result<Json<ServiceAccounts>, Problem> {
    Ok(Json(service_accounts(authenticator(&st)?)))
}

/// Reload the keystore now.
///
/// It is also reloaded when it changes and on SIGHUP. An invalid keystore
/// is reported (422) and the keys in force stay; so they do when it cannot
/// be read (503: the database is away).
#[utoipa::path(
    post,
    path = "/api/v1/admin/service-accounts/reload",
    tag = "identity",
    responses(
        (status = 200, description = "Reloaded; the keys now in force", body = ServiceAccounts),
        (status = 422, description = "The keystore is invalid; the previous keys stay in force", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The keystore cannot be read now (its database is away), or the vault is unavailable; the previous keys stay in force; retry after `Retry-After`", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn reload_service_accounts(
    State(st): State<AppState>,
) -> Result<Json<ServiceAccounts>, Problem> {
    let a = authenticator(&st)?;
    // A database keystore blocks on its query: off the async workers.
    let keystore = std::sync::Arc::clone(a.keystore());
    let reloaded = tokio::task::spawn_blocking(move || keystore.reload())
        .await
        .map_err(|e| Problem::internal("keystore_reload", &e))?;
    reloaded.map_err(|e| match e {
        KeySourceError::Invalid(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("keystore not reloaded, the previous keys stay in force: {e}"),
        ),
        KeySourceError::Unavailable(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("keystore cannot be read now, the previous keys stay in force: {e}"),
        )
        .retry_after(1),
    })?;
    Ok(Json(service_accounts(a)))
}
