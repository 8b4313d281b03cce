//! The OpenAPI document against the router and the permission table:
//! every route of the router is documented and in the table (and nothing
//! else is), every operation and parameter has a description, and each
//! route enforces exactly the auth its `security` and its 401/403 say,
//! checked by calling it.

mod common;

use std::collections::BTreeSet;

use common::{KEYS, TestServer, token_for};
use evault_auth::Role;
use evault_server::access::{Access, OPERATIONS, lookup, scope_for};
use serde_json::Value;

/// A concrete path for a route template: parameters get values the route
/// accepts as well-formed (the thing they name need not exist).
fn concrete(route: &str) -> String {
    route
        .split('/')
        .map(|seg| match seg {
            "{id}" => "01900000-0000-7000-8000-000000000000",
            "{size}" => "1",
            s if s.starts_with("{*") => "000",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

fn statuses(op: &Value) -> BTreeSet<String> {
    op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn routes_document_and_permission_table_agree() {
    let routes = evault_server::routes();
    let doc = serde_json::to_value(evault_server::openapi()).unwrap();
    assert!(
        doc["servers"][0]["url"].is_string(),
        "the document names a server"
    );

    // Router and table: the same routes, both ways.
    let routed: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, route, _)| (m.to_string(), route.clone()))
        .collect();
    let table: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .filter(|o| o.method != axum::http::Method::OPTIONS)
        .map(|o| (o.method.to_string(), o.path.to_string()))
        .collect();
    assert_eq!(routed, table, "router (left) and permission table (right)");

    // Document and router: the same operations.
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let routed_docs: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, _, documented)| (m.to_string(), documented.clone()))
        .collect();
    assert_eq!(documented, routed_docs);

    for (method, route, path) in &routes {
        let op = operation(&doc, path, method.as_str());
        let what = format!("{method} {path}");
        for field in ["summary", "description"] {
            assert!(
                op[field].as_str().is_some_and(|d| !d.trim().is_empty()),
                "{what} has no {field}"
            );
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            assert!(
                p["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{what}: parameter {} has no description",
                p["name"]
            );
        }
        let row = lookup(method, route).unwrap_or_else(|| panic!("{what} is not in the table"));
        assert_eq!(row.path, route, "{what} matches another row");
        let public = op["security"] == serde_json::json!([]);
        let codes = statuses(op);
        match row.access {
            Access::Open | Access::PublicLog => assert!(public, "{what} needs no token"),
            Access::Roles(_) => assert!(op["security"].is_null(), "{what} needs a token"),
        }
        assert_eq!(
            codes.contains("401"),
            !public,
            "{what}: 401 iff a token is needed"
        );
        // task.create is granted to every role, but each task kind names
        // the roles that may start it: a 403 of its own.
        let forbidding = row.name == "task.create"
            || Role::ALL
                .iter()
                .any(|r| matches!(row.access, Access::Roles(_)) && scope_for(row, [*r]).is_none());
        assert_eq!(
            codes.contains("403"),
            forbidding,
            "{what}: 403 iff some role is not granted"
        );
        assert!(codes.contains("429"), "{what}: 429");
    }
}

#[test]
fn every_route_enforces_the_auth_it_documents() {
    let s = TestServer::start();
    let doc = s
        .request_as(None, "GET", "/api/v1/openapi.json", &[], b"")
        .ok_json();
    for (method, route, path) in evault_server::routes() {
        let op = operation(&doc, &path, method.as_str());
        let what = format!("{method} {route}");
        let codes = statuses(op);
        let url = concrete(&route);
        let body: &[u8] = if method == axum::http::Method::POST {
            b"{}"
        } else {
            b""
        };
        let headers: &[(&str, &[u8])] = &[("content-type", b"application/json")];

        // Without a token: 401 exactly where the document says a token is
        // needed; whatever comes back is documented; the route exists.
        let r = s.request_as(None, method.as_str(), &url, headers, body);
        let public = op["security"] == serde_json::json!([]);
        if public {
            assert_ne!(r.status, 401, "{what} is public: {}", r.text());
        } else {
            assert_eq!(r.status, 401, "{what} needs a token: {}", r.text());
            assert!(r.header("www-authenticate").is_some(), "{what}");
        }
        assert!(
            codes.contains(&r.status.to_string()),
            "{what} answered {} without a token, which its document does not list: {}",
            r.status,
            r.text()
        );
        assert_ne!(r.status, 405, "{what} is not routed");
        if r.status == 404 {
            assert!(
                !r.text().contains("no resource at"),
                "{what} is not routed: {}",
                r.text()
            );
        }

        // With a token of a role the table does not grant: 403 exactly
        // where one is documented.
        let row = lookup(&method, &route).unwrap();
        let refused_key = KEYS
            .iter()
            .find(|(_, _, roles)| {
                matches!(row.access, Access::Roles(_))
                    && scope_for(row, roles.iter().copied()).is_none()
            })
            .map(|k| k.0);
        if let Some(key) = refused_key {
            let r = s.request_as(Some(&token_for(key)), method.as_str(), &url, headers, body);
            assert_eq!(r.status, 403, "{what} as {key}: {}", r.text());
            assert!(codes.contains("403"), "{what}");
        } else {
            // Every role may call it: a valid token, whatever its roles, is
            // never refused.
            let r = s.request_as(
                Some(&token_for("ingester")),
                method.as_str(),
                &url,
                headers,
                body,
            );
            assert!(
                !matches!(r.status, 401 | 403),
                "{what} refused a valid token: {}",
                r.text()
            );
            assert!(
                codes.contains(&r.status.to_string()),
                "{what} answered {}, which its document does not list: {}",
                r.status,
                r.text()
            );
        }
    }
}
