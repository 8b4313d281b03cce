//! The permission table: every route, the operation name the audit trail
//! records for it, and who may call it. One table, enforced by the guard
//! (`guard.rs`) for REST and, through [`GRPC_METHODS`], for gRPC, and
//! printed in docs/SECURITY.md (a test keeps the two equal).

use axum::http::Method;
use evault_auth::Role;

/// How much of the evidence a role may read through an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything the operation reaches.
    All,
    /// Only records the caller submitted (`ingested_by` is its principal).
    Own,
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always (liveness, readiness, the API description).
    Open,
    /// The public log data (checkpoints, tiles, consistency): anyone when
    /// `public_log_read` is on, otherwise any authenticated caller.
    PublicLog,
    /// Callers holding one of these roles, with the scope each gets.
    Roles(&'static [(Role, Scope)]),
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Operation {
    /// Recorded in the audit trail, e.g. `evidence.put`.
    pub name: &'static str,
    /// HTTP method of the route.
    pub method: Method,
    /// Route template: `{name}` matches one segment, `{*name}` the rest.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Changes state (its audit event must be durable before the reply).
    pub mutating: bool,
}

const INGESTER_OWN_AUDITOR_ALL: &[(Role, Scope)] =
    &[(Role::Ingester, Scope::Own), (Role::Auditor, Scope::All)];
const INGESTER: &[(Role, Scope)] = &[(Role::Ingester, Scope::All)];
const AUDITOR: &[(Role, Scope)] = &[(Role::Auditor, Scope::All)];
const ADMIN: &[(Role, Scope)] = &[(Role::Admin, Scope::All)];
const AUDITOR_ADMIN: &[(Role, Scope)] = &[(Role::Auditor, Scope::All), (Role::Admin, Scope::All)];
const INGESTER_ADMIN: &[(Role, Scope)] = &[(Role::Ingester, Scope::All), (Role::Admin, Scope::All)];
const INGESTER_OWN_AUDITOR_ADMIN_ALL: &[(Role, Scope)] = &[
    (Role::Ingester, Scope::Own),
    (Role::Auditor, Scope::All),
    (Role::Admin, Scope::All),
];
/// Tasks: every role sees its own; an admin sees everyone's.
const TASKS: &[(Role, Scope)] = &[
    (Role::Ingester, Scope::Own),
    (Role::Auditor, Scope::Own),
    (Role::Admin, Scope::All),
];
const ANY_ROLE: &[(Role, Scope)] = &[
    (Role::Ingester, Scope::All),
    (Role::Auditor, Scope::All),
    (Role::Admin, Scope::All),
];

const fn op(
    name: &'static str,
    method: Method,
    path: &'static str,
    access: Access,
    mutating: bool,
) -> Operation {
    Operation {
        name,
        method,
        path,
        access,
        mutating,
    }
}

/// Every route of the API. Order matters only for the docs.
pub const OPERATIONS: &[Operation] = &[
    op("health.live", Method::GET, "/healthz", Access::Open, false),
    op("health.ready", Method::GET, "/readyz", Access::Open, false),
    // A CORS preflight of any path: the CORS layer answers it for the
    // public read routes, the router (405 or 404) for every other one.
    op(
        "cors.preflight",
        Method::OPTIONS,
        "/{*path}",
        Access::Open,
        false,
    ),
    op(
        "api.describe",
        Method::GET,
        "/api/v1/openapi.json",
        Access::Open,
        false,
    ),
    // The dashboard: public code, no data (it reads the API with the
    // user's token). Same-origin only: no CORS.
    op("ui.page", Method::GET, "/ui/", Access::Open, false),
    op(
        "ui.config",
        Method::GET,
        "/ui/config.json",
        Access::Open,
        false,
    ),
    op(
        "ui.asset",
        Method::GET,
        "/ui/s/{*path}",
        Access::Open,
        false,
    ),
    op(
        "metrics.read",
        Method::GET,
        "/metrics",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "whoami",
        Method::GET,
        "/api/v1/whoami",
        Access::Roles(ANY_ROLE),
        false,
    ),
    op(
        "evidence.put",
        Method::POST,
        "/api/v1/evidence",
        Access::Roles(INGESTER),
        true,
    ),
    op(
        "evidence.stream",
        Method::POST,
        "/api/v1/evidence/stream",
        Access::Roles(INGESTER),
        true,
    ),
    op(
        "evidence.list",
        Method::GET,
        "/api/v1/evidence",
        Access::Roles(INGESTER_OWN_AUDITOR_ALL),
        false,
    ),
    op(
        "evidence.get",
        Method::GET,
        "/api/v1/evidence/{id}",
        Access::Roles(INGESTER_OWN_AUDITOR_ALL),
        false,
    ),
    op(
        "evidence.payload",
        Method::GET,
        "/api/v1/evidence/{id}/payload",
        Access::Roles(INGESTER_OWN_AUDITOR_ALL),
        false,
    ),
    // Erasure, legal holds and retention change what every reader can
    // read: admins only; auditors may see the holds and policies.
    op(
        "evidence.erase",
        Method::POST,
        "/api/v1/evidence/{id}/erase",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "holds.list",
        Method::GET,
        "/api/v1/holds",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "holds.create",
        Method::POST,
        "/api/v1/holds",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "holds.release",
        Method::POST,
        "/api/v1/holds/{id}/release",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "retention.list",
        Method::GET,
        "/api/v1/retention",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "retention.create",
        Method::POST,
        "/api/v1/retention",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "retention.delete",
        Method::DELETE,
        "/api/v1/retention/{id}",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "evidence.proof",
        Method::GET,
        "/api/v1/evidence/{id}/proof",
        Access::Roles(INGESTER_OWN_AUDITOR_ALL),
        false,
    ),
    op(
        "analytics.summary",
        Method::GET,
        "/api/v1/analytics/summary",
        Access::Roles(INGESTER_OWN_AUDITOR_ADMIN_ALL),
        false,
    ),
    op(
        "stats.evidence",
        Method::GET,
        "/api/v1/stats/evidence",
        Access::Roles(INGESTER_OWN_AUDITOR_ALL),
        false,
    ),
    op(
        "log.info",
        Method::GET,
        "/api/v1/log",
        Access::PublicLog,
        false,
    ),
    op(
        "log.keys",
        Method::GET,
        "/api/v1/log/keys",
        Access::PublicLog,
        false,
    ),
    op(
        "log.keys.rotate",
        Method::POST,
        "/api/v1/log/keys/rotate",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "log.keys.retire",
        Method::POST,
        "/api/v1/log/keys/retire",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "log.consistency",
        Method::GET,
        "/api/v1/tree/consistency",
        Access::PublicLog,
        false,
    ),
    op(
        "checkpoints.list",
        Method::GET,
        "/api/v1/checkpoints",
        Access::PublicLog,
        false,
    ),
    op(
        "checkpoints.latest",
        Method::GET,
        "/api/v1/checkpoints/latest",
        Access::PublicLog,
        false,
    ),
    op(
        "checkpoints.get",
        Method::GET,
        "/api/v1/checkpoints/{size}",
        Access::PublicLog,
        false,
    ),
    op(
        "tlog.checkpoint",
        Method::GET,
        "/tlog/checkpoint",
        Access::PublicLog,
        false,
    ),
    op(
        "tlog.tile",
        Method::GET,
        "/tlog/tile/{*path}",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.list",
        Method::GET,
        "/api/v1/audit",
        Access::Roles(AUDITOR),
        false,
    ),
    op(
        "audit.log",
        Method::GET,
        "/api/v1/audit/log",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.stats",
        Method::GET,
        "/api/v1/audit/stats",
        Access::Roles(AUDITOR),
        false,
    ),
    op(
        "audit.consistency",
        Method::GET,
        "/api/v1/audit/consistency",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.checkpoints.list",
        Method::GET,
        "/api/v1/audit/checkpoints",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.checkpoints.latest",
        Method::GET,
        "/api/v1/audit/checkpoints/latest",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.checkpoints.get",
        Method::GET,
        "/api/v1/audit/checkpoints/{size}",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.get",
        Method::GET,
        "/api/v1/audit/events/{id}",
        Access::Roles(AUDITOR),
        false,
    ),
    op(
        "audit.proof",
        Method::GET,
        "/api/v1/audit/events/{id}/proof",
        Access::Roles(AUDITOR),
        false,
    ),
    op(
        "audit.tlog.checkpoint",
        Method::GET,
        "/tlog-audit/checkpoint",
        Access::PublicLog,
        false,
    ),
    op(
        "audit.tlog.tile",
        Method::GET,
        "/tlog-audit/tile/{*path}",
        Access::PublicLog,
        false,
    ),
    // The audit log's leaves name principals and operations: an entry
    // bundle is everyone's events, for auditors only (the vault refuses it
    // to any reader that may not see them all).
    op(
        "audit.tlog.entries",
        Method::GET,
        "/tlog-audit/tile/entries/{*path}",
        Access::Roles(AUDITOR),
        false,
    ),
    // Any role may start a task; each kind names the roles that may start
    // it (checked by the handler against the kind, 403 otherwise).
    op(
        "task.create",
        Method::POST,
        "/api/v1/tasks",
        Access::Roles(ANY_ROLE),
        true,
    ),
    op(
        "task.list",
        Method::GET,
        "/api/v1/tasks",
        Access::Roles(TASKS),
        false,
    ),
    op(
        "task.get",
        Method::GET,
        "/api/v1/tasks/{id}",
        Access::Roles(TASKS),
        false,
    ),
    op(
        "task.events",
        Method::GET,
        "/api/v1/tasks/{id}/events",
        Access::Roles(TASKS),
        false,
    ),
    op(
        "task.result",
        Method::GET,
        "/api/v1/tasks/{id}/result",
        Access::Roles(TASKS),
        false,
    ),
    op(
        "task.cancel",
        Method::POST,
        "/api/v1/tasks/{id}/cancel",
        Access::Roles(TASKS),
        true,
    ),
    // A backfill logs evidence, as its caller: whoever may ingest, and
    // admins (the kind names the same roles).
    op(
        "backfill.create",
        Method::POST,
        "/api/v1/backfills",
        Access::Roles(INGESTER_ADMIN),
        true,
    ),
    // Importing adds to what every auditor reads: admins only. Mirrors
    // name another vault's principals, not this one's: read with a scope
    // over everything.
    op(
        "import.create",
        Method::POST,
        "/api/v1/imports",
        Access::Roles(ADMIN),
        true,
    ),
    op(
        "mirrors.list",
        Method::GET,
        "/api/v1/mirrors",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "mirrors.records",
        Method::GET,
        "/api/v1/mirrors/records",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "mirrors.proof",
        Method::GET,
        "/api/v1/mirrors/proof",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "mirrors.payload",
        Method::GET,
        "/api/v1/mirrors/payload",
        Access::Roles(AUDITOR_ADMIN),
        false,
    ),
    op(
        "admin.service_accounts.list",
        Method::GET,
        "/api/v1/admin/service-accounts",
        Access::Roles(ADMIN),
        false,
    ),
    op(
        "admin.service_accounts.reload",
        Method::POST,
        "/api/v1/admin/service-accounts/reload",
        Access::Roles(ADMIN),
        true,
    ),
];

/// Every gRPC method, and the operation of [`OPERATIONS`] it performs: a
/// gRPC call is allowed, scoped and audited exactly like the REST request
/// of the same operation.
pub const GRPC_METHODS: &[(&str, &str)] = &[
    ("/evault.v1.EvidenceService/Put", "evidence.put"),
    ("/evault.v1.EvidenceService/Get", "evidence.get"),
    ("/evault.v1.EvidenceService/List", "evidence.list"),
    ("/evault.v1.EvidenceService/IngestStream", "evidence.stream"),
    ("/evault.v1.LogService/GetLogInfo", "log.info"),
    (
        "/evault.v1.LogService/GetLatestCheckpoint",
        "checkpoints.latest",
    ),
    ("/evault.v1.LogService/GetCheckpoint", "checkpoints.get"),
    ("/evault.v1.LogService/GetInclusionProof", "evidence.proof"),
    (
        "/evault.v1.LogService/GetConsistencyProof",
        "log.consistency",
    ),
    ("/evault.v1.AuditService/Query", "audit.list"),
    ("/evault.v1.TaskService/Start", "task.create"),
    ("/evault.v1.TaskService/Get", "task.get"),
    ("/evault.v1.TaskService/List", "task.list"),
    ("/evault.v1.TaskService/Cancel", "task.cancel"),
    ("/evault.v1.TaskService/Watch", "task.events"),
    ("/evault.v1.TaskService/GetResult", "task.result"),
    ("/grpc.health.v1.Health/Check", "health.ready"),
    ("/grpc.health.v1.Health/Watch", "health.ready"),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "api.describe",
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "api.describe",
    ),
];

/// The operation of a gRPC method (`/package.Service/Method`); `None` for
/// a method the server does not have (it answers UNIMPLEMENTED).
pub fn lookup_grpc(path: &str) -> Option<&'static Operation> {
    let name = GRPC_METHODS.iter().find(|(m, _)| *m == path)?.1;
    OPERATIONS.iter().find(|o| o.name == name)
}

/// The gRPC methods and their operations as Markdown, as printed in
/// docs/SECURITY.md.
pub fn grpc_markdown_table() -> String {
    let mut out = String::from("| gRPC method | operation |\n|---|---|\n");
    for (method, name) in GRPC_METHODS {
        out.push_str(&format!("| `{method}` | `{name}` |\n"));
    }
    out
}

/// The operation a request is for, by method and path. A path no route
/// matches is `None` (the router answers 404 or 405).
pub fn lookup(method: &Method, path: &str) -> Option<&'static Operation> {
    let mut best: Option<&'static Operation> = None;
    for candidate in OPERATIONS {
        if candidate.method != *method || !template_matches(candidate.path, path) {
            continue;
        }
        // A literal segment beats a parameter (`/checkpoints/latest` over
        // `/checkpoints/{size}`), as in the router.
        if best.is_none_or(|b| literal_segments(candidate.path) > literal_segments(b.path)) {
            best = Some(candidate);
        }
    }
    best
}

fn literal_segments(template: &str) -> usize {
    template.split('/').filter(|s| !s.starts_with('{')).count()
}

fn template_matches(template: &str, path: &str) -> bool {
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with("{*") => {
                return !g.is_empty() || want.next().is_none();
            }
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Whether `op` needs a token: a role, or the public log data while
/// `public_log_read` is off. Routes that need none are answered to anyone
/// (a token sent to them that does not verify is ignored, not refused);
/// only they get CORS headers.
pub fn needs_token(op: &Operation, public_log_read: bool) -> bool {
    match op.access {
        Access::Open => false,
        Access::PublicLog => !public_log_read,
        Access::Roles(_) => true,
    }
}

/// Whether a caller with a valid token can be refused `op` for its roles
/// (403): some role does not grant it. An operation every role may call
/// never answers 403 (a token always carries at least one role).
pub fn can_forbid(op: &Operation) -> bool {
    matches!(op.access, Access::Roles(_)) && Role::ALL.iter().any(|r| scope_for(op, [*r]).is_none())
}

/// What a caller with `roles` may do through `op`: `None` if nothing, else
/// the widest scope any of its roles grants.
pub fn scope_for(op: &Operation, roles: impl IntoIterator<Item = Role>) -> Option<Scope> {
    let Access::Roles(grants) = op.access else {
        return Some(Scope::All);
    };
    let mut scope = None;
    for role in roles {
        for (granted, s) in grants {
            if *granted == role && scope != Some(Scope::All) {
                scope = Some(*s);
            }
        }
    }
    scope
}

/// The table as Markdown, as printed in docs/SECURITY.md.
pub fn markdown_table() -> String {
    let cell = |op: &Operation, role: Role| match op.access {
        Access::Open => "yes".to_string(),
        Access::PublicLog => "yes".to_string(),
        Access::Roles(_) => match scope_for(op, [role]) {
            Some(Scope::All) => "yes".into(),
            Some(Scope::Own) => "own".into(),
            None => "–".into(),
        },
    };
    let mut out = String::from(
        "| operation | method and path | no token | ingester | auditor | admin |\n\
         |---|---|---|---|---|---|\n",
    );
    for op in OPERATIONS {
        let anonymous = match op.access {
            Access::Open => "yes",
            Access::PublicLog => "if `public_log_read`",
            Access::Roles(_) => "–",
        };
        out.push_str(&format!(
            "| `{}` | `{} {}` | {} | {} | {} | {} |\n",
            op.name,
            op.method,
            op.path,
            anonymous,
            cell(op, Role::Ingester),
            cell(op, Role::Auditor),
            cell(op, Role::Admin),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_literal_segments_and_matches_wildcards() {
        let name = |m: Method, p: &str| lookup(&m, p).map(|o| o.name);
        assert_eq!(
            name(Method::GET, "/api/v1/checkpoints/latest"),
            Some("checkpoints.latest")
        );
        assert_eq!(
            name(Method::GET, "/api/v1/checkpoints/12"),
            Some("checkpoints.get")
        );
        assert_eq!(
            name(Method::GET, "/tlog/tile/0/x001/234.p/7"),
            Some("tlog.tile")
        );
        assert_eq!(
            name(Method::GET, "/api/v1/evidence/abc/proof"),
            Some("evidence.proof")
        );
        assert_eq!(name(Method::POST, "/api/v1/evidence"), Some("evidence.put"));
        assert_eq!(
            name(Method::POST, "/api/v1/evidence/stream"),
            Some("evidence.stream")
        );
        assert_eq!(
            name(Method::GET, "/tlog-audit/tile/0/000.p/3"),
            Some("audit.tlog.tile")
        );
        assert_eq!(
            name(Method::GET, "/tlog-audit/tile/entries/000.p/3"),
            Some("audit.tlog.entries")
        );
        assert_eq!(
            name(Method::OPTIONS, "/tlog/checkpoint"),
            Some("cors.preflight")
        );
        assert_eq!(name(Method::OPTIONS, "/"), Some("cors.preflight"));
        assert_eq!(name(Method::DELETE, "/api/v1/evidence"), None);
        assert_eq!(name(Method::GET, "/api/v1/evidence/"), None);
        assert_eq!(name(Method::GET, "/nope"), None);
    }

    #[test]
    fn scopes() {
        let get = lookup(&Method::GET, "/api/v1/evidence/x").unwrap();
        assert_eq!(scope_for(get, [Role::Ingester]), Some(Scope::Own));
        assert_eq!(
            scope_for(get, [Role::Ingester, Role::Auditor]),
            Some(Scope::All)
        );
        assert_eq!(scope_for(get, [Role::Admin]), None);
        let put = lookup(&Method::POST, "/api/v1/evidence").unwrap();
        assert_eq!(scope_for(put, [Role::Auditor, Role::Admin]), None);
    }

    #[test]
    fn operation_names_are_unique() {
        let mut names: Vec<_> = OPERATIONS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len());
    }

    #[test]
    fn every_grpc_method_names_an_operation() {
        for (method, name) in GRPC_METHODS {
            assert_eq!(
                lookup_grpc(method).map(|o| o.name),
                Some(*name),
                "{method} maps to {name}, which is not in OPERATIONS"
            );
        }
        assert!(lookup_grpc("/evault.v1.EvidenceService/Nope").is_none());
    }

    #[test]
    fn security_doc_prints_the_grpc_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/SECURITY.md"
        ))
        .expect("docs/SECURITY.md");
        assert!(
            doc.contains(&grpc_markdown_table()),
            "docs/SECURITY.md must contain the gRPC method table exactly as \
             access::grpc_markdown_table() prints it:\n{}",
            grpc_markdown_table()
        );
    }

    #[test]
    fn security_doc_prints_this_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/SECURITY.md"
        ))
        .expect("docs/SECURITY.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/SECURITY.md must contain the permission table exactly as \
             access::markdown_table() prints it:\n{}",
            markdown_table()
        );
    }
}
