//! Identity and the audit trail over real HTTP: every token rejection with
//! its reason and its audit event, the permission table as enforced, audit
//! completeness with proofs, keystore hot reload, rate limits.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{KEYS, PRINCIPAL, Resp, TestServer, test_key, token_for};
use evault_auth::{AuthFailure, KeystoreFile, Role, TokenPart};
use evault_note::{Ed25519Verifier, Verifiers};
use evault_server::access::{Access, OPERATIONS, Scope, scope_for};
use evault_verify::AuditProofBundle;
use evault_verify::audit::{AuditEvent, Outcome};
use serde_json::{Value, json};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The secret of test key `key_id` (see `common::test_key`).
fn secret(key_id: &str) -> Vec<u8> {
    format!("{key_id:-<40}").into_bytes()
}

/// A JWS over raw header and payload bytes, HMAC-SHA256 with `key`.
fn jws_raw(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

fn jws(header: Value, claims: Value, key_id: &str) -> String {
    jws_raw(
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
        &secret(key_id),
    )
}

fn header(kid: &str) -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": kid})
}

fn claims(sub: &str, roles: &[&str]) -> Value {
    let t = now();
    json!({"sub": sub, "roles": roles, "iat": t, "exp": t + 600})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

/// Every audit event in the log, by request id (read through the vault,
/// which writes nothing itself).
fn audit_events(s: &TestServer) -> HashMap<String, AuditEvent> {
    let mut out = HashMap::new();
    let mut after = None;
    loop {
        let page =
            s.rt.block_on(s.vault.audit_list(
                &evault_vault::Reader::all("test"),
                evault_store::AuditQuery {
                    after_index: after,
                    limit: 1000,
                    ..Default::default()
                },
            ))
            .unwrap();
        for e in page.items {
            out.insert(e.request_id.clone(), e);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn audit_size(s: &TestServer) -> u64 {
    s.vault
        .audit_log()
        .map(|l| l.info())
        .expect("audit on")
        .tree_size
}

fn request_id(r: &Resp) -> String {
    r.header("x-request-id")
        .expect("every reply has X-Request-Id")
}

#[test]
fn each_token_rejection_is_a_401_with_its_reason_and_is_audited() {
    let s = TestServer::start();
    // One more key, already expired.
    let mut file = KeystoreFile::load(&s.keystore).unwrap();
    let mut expired = test_key("expired", "test:expired", &[Role::Ingester]);
    expired.expires_at = Some(SystemTime::now() - Duration::from_secs(60));
    file.keys.push(expired);
    file.save(&s.keystore).unwrap();
    s.keystore_handle.as_ref().unwrap().reload().unwrap();

    let t = now();
    let ing = || claims("test:ingester", &["ingester"]);
    let h = || header("ingester");
    let bearer = |tok: String| format!("Bearer {tok}");
    let good_sig =
        |hdr: &str, payload: &str| jws_raw(hdr.as_bytes(), payload.as_bytes(), &secret("ingester"));
    // (name, Authorization header value or None, expected failure)
    let cases: Vec<(&str, Option<String>, AuthFailure)> = vec![
        ("no token", None, AuthFailure::MissingCredentials),
        (
            "empty bearer",
            Some("Bearer ".into()),
            AuthFailure::EmptyToken,
        ),
        (
            "basic scheme",
            Some("Basic dXNlcjpwdw==".into()),
            AuthFailure::MalformedAuthorization,
        ),
        (
            "two parts",
            Some(bearer("abc.def".into())),
            AuthFailure::NotThreeParts { parts: 2 },
        ),
        (
            "four parts",
            Some(bearer("a.b.c.d".into())),
            AuthFailure::NotThreeParts { parts: 4 },
        ),
        (
            "bad base64 header",
            Some(bearer("@@@.e30.c2ln".into())),
            AuthFailure::BadBase64 {
                part: TokenPart::Header,
            },
        ),
        (
            "padded base64 payload",
            Some(bearer(format!("{}.e30=.c2ln", b64(br#"{"alg":"HS256"}"#)))),
            AuthFailure::BadBase64 {
                part: TokenPart::Payload,
            },
        ),
        (
            "header not UTF-8",
            Some(bearer(format!("{}.e30.c2ln", b64(&[0xff, 0xfe, 0x7b])))),
            AuthFailure::NotUtf8 {
                part: TokenPart::Header,
            },
        ),
        (
            "header not an object",
            Some(bearer(format!("{}.e30.c2ln", b64(b"[1,2]")))),
            AuthFailure::NotJsonObject {
                part: TokenPart::Header,
            },
        ),
        (
            "payload not JSON",
            Some(bearer(good_sig(
                &header("ingester").to_string(),
                "not json",
            ))),
            AuthFailure::NotJsonObject {
                part: TokenPart::Payload,
            },
        ),
        (
            "alg none",
            Some(bearer(format!(
                "{}.{}.",
                b64(br#"{"alg":"none","kid":"ingester"}"#),
                b64(ing().to_string().as_bytes())
            ))),
            AuthFailure::UnsupportedAlg { alg: "none".into() },
        ),
        (
            "alg HS512",
            Some(bearer(jws(
                with(h(), "alg", json!("HS512")),
                ing(),
                "ingester",
            ))),
            AuthFailure::UnsupportedAlg {
                alg: "HS512".into(),
            },
        ),
        (
            "missing kid",
            Some(bearer(jws(without(h(), "kid"), ing(), "ingester"))),
            AuthFailure::MissingKid,
        ),
        (
            "unknown key",
            Some(bearer(jws(header("nobody"), ing(), "nobody"))),
            AuthFailure::UnknownKey {
                kid: "nobody".into(),
            },
        ),
        (
            "expired key",
            Some(bearer(jws(
                header("expired"),
                claims("test:expired", &["ingester"]),
                "expired",
            ))),
            AuthFailure::KeyExpired {
                kid: "expired".into(),
            },
        ),
        (
            "bad signature",
            Some(bearer(jws(h(), ing(), "auditor"))),
            AuthFailure::BadSignature,
        ),
        (
            "missing sub",
            Some(bearer(jws(h(), without(ing(), "sub"), "ingester"))),
            AuthFailure::MissingSubject,
        ),
        (
            "sub of another principal",
            Some(bearer(jws(
                h(),
                with(ing(), "sub", json!("test:auditor")),
                "ingester",
            ))),
            AuthFailure::SubjectMismatch,
        ),
        (
            "missing roles",
            Some(bearer(jws(h(), without(ing(), "roles"), "ingester"))),
            AuthFailure::MissingRoles,
        ),
        (
            "empty roles",
            Some(bearer(jws(
                h(),
                with(ing(), "roles", json!([])),
                "ingester",
            ))),
            AuthFailure::MissingRoles,
        ),
        (
            "role not granted",
            Some(bearer(jws(
                h(),
                with(ing(), "roles", json!(["ingester", "admin"])),
                "ingester",
            ))),
            AuthFailure::RoleNotGranted { role: Role::Admin },
        ),
        (
            "missing iat",
            Some(bearer(jws(h(), without(ing(), "iat"), "ingester"))),
            AuthFailure::MissingTimeClaim { claim: "iat" },
        ),
        (
            "missing exp",
            Some(bearer(jws(h(), without(ing(), "exp"), "ingester"))),
            AuthFailure::MissingTimeClaim { claim: "exp" },
        ),
        (
            "iat not a number",
            Some(bearer(jws(
                h(),
                with(ing(), "iat", json!("yesterday")),
                "ingester",
            ))),
            AuthFailure::NonNumericTimeClaim { claim: "iat" },
        ),
        (
            "exp not a number",
            Some(bearer(jws(
                h(),
                with(ing(), "exp", json!("later")),
                "ingester",
            ))),
            AuthFailure::NonNumericTimeClaim { claim: "exp" },
        ),
        (
            "expired token",
            Some(bearer(jws(
                h(),
                with(with(ing(), "iat", json!(t - 7200)), "exp", json!(t - 3600)),
                "ingester",
            ))),
            AuthFailure::Expired,
        ),
        (
            "nbf in the future",
            Some(bearer(jws(
                h(),
                with(ing(), "nbf", json!(t + 3600)),
                "ingester",
            ))),
            AuthFailure::NotYetValid,
        ),
        (
            "iat in the future",
            Some(bearer(jws(
                h(),
                with(with(ing(), "iat", json!(t + 3600)), "exp", json!(t + 4000)),
                "ingester",
            ))),
            AuthFailure::IssuedInFuture,
        ),
        (
            "lifetime over 24 h",
            Some(bearer(jws(
                h(),
                with(ing(), "exp", json!(t + 25 * 3600)),
                "ingester",
            ))),
            AuthFailure::LifetimeTooLong {
                lifetime_secs: 25 * 3600,
                max_secs: 24 * 3600,
            },
        ),
    ];

    let mut sent = Vec::new();
    for (name, auth, want) in &cases {
        let credential = auth
            .as_deref()
            .and_then(|a| a.split_once(' '))
            .map(|(_, c)| c.to_string())
            .unwrap_or_default();
        let headers: Vec<(&str, &[u8])> = match auth {
            Some(v) => vec![("Authorization", v.as_bytes())],
            None => vec![],
        };
        let r = if auth.is_some() {
            s.request("GET", "/api/v1/evidence", &headers, b"")
        } else {
            s.request_as(None, "GET", "/api/v1/evidence", &[], b"")
        };
        assert_eq!(r.status, 401, "{name}: {}", r.text());
        assert_eq!(r.status, want.status(), "{name}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{name}"
        );
        let body = r.json();
        assert_eq!(body["detail"], json!(want.reason()), "{name}");
        assert!(r.header("www-authenticate").is_some(), "{name}");
        sent.push((*name, request_id(&r), want.clone(), credential));
    }

    // Each rejection left one audit event saying who (nobody), what and why.
    let events = audit_events(&s);
    for (name, rid, want, credential) in sent {
        let e = events
            .get(&rid)
            .unwrap_or_else(|| panic!("{name}: no audit event"));
        assert_eq!(e.outcome, Outcome::Unauthenticated, "{name}");
        assert_eq!(e.status, 401, "{name}");
        assert_eq!(e.principal, "anonymous", "{name}");
        assert_eq!(e.operation, "evidence.list", "{name}");
        assert_eq!(
            e.reason.as_deref(),
            Some(format!("{}: {}", want.code(), want.reason()).as_str()),
            "{name}"
        );
        // The credential never reaches the trail (nor the reply).
        let line = serde_json::to_string(e).unwrap();
        if credential.len() > 4 {
            assert!(!line.contains(&credential), "{name}: {line}");
        }
    }

    // And a good token for contrast.
    let good = jws(h(), ing(), "ingester");
    let r = s.request(
        "GET",
        "/api/v1/whoami",
        &[("Authorization", bearer(good).as_bytes())],
        b"",
    );
    assert_eq!(r.ok_json()["principal"], json!("test:ingester"));
}

/// A path for `template` with real ids: a record of `test:ingester`, a
/// checkpointed size, an existing tile, an audit event.
fn concrete(template: &str, ids: &HashMap<&str, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in ids {
        out = out.replace(k, v);
    }
    out
}

#[test]
fn the_permission_table_is_what_is_enforced() {
    for public_log_read in [true, false] {
        let s = TestServer::start_full(|_| {}, |o| o.public_log_read = public_log_read, false);
        let ingester = token_for("ingester");
        let r = s.request(
            "POST",
            "/api/v1/evidence",
            &[
                ("Content-Type", b"text/plain"),
                ("Authorization", format!("Bearer {ingester}").as_bytes()),
            ],
            b"owned by test:ingester",
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let record = r.json()["record"]["id"].as_str().unwrap().to_string();
        let r = s.request_as(
            Some(&token_for("other-ingester")),
            "POST",
            "/api/v1/evidence",
            &[("Content-Type", b"text/plain")],
            b"owned by test:other",
        );
        assert_eq!(r.status, 201, "{}", r.text());
        // A record of its own for the one erasure the walk allows (admin),
        // so every other route still reads the first record's payload.
        let r = s.request(
            "POST",
            "/api/v1/evidence",
            &[
                ("Content-Type", b"text/plain"),
                ("Authorization", format!("Bearer {ingester}").as_bytes()),
            ],
            b"erased by the walk",
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let to_erase = r.json()["record"]["id"].as_str().unwrap().to_string();
        // A hold and a policy for the one release and delete the walk allows;
        // their selector covers nothing, so they hold and expire nothing.
        let admin = token_for("admin");
        let nothing = br#"{"selector":{"labels":{"walk":"nothing"}},"reason":"the walk"}"#;
        let r = s.request_as(
            Some(&admin),
            "POST",
            "/api/v1/holds",
            &[("Content-Type", b"application/json")],
            nothing,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let hold = r.json()["id"].as_str().unwrap().to_string();
        let policy_body =
            br#"{"name":"walk","selector":{"labels":{"walk":"nothing"}},"keep_for_seconds":86400}"#;
        let r = s.request_as(
            Some(&admin),
            "POST",
            "/api/v1/retention",
            &[("Content-Type", b"application/json")],
            policy_body,
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let policy = r.json()["id"].as_str().unwrap().to_string();
        let size = s.wait_for_checkpoint(3);
        let audit_event = audit_events(&s)
            .into_values()
            .min_by_key(|e| e.leaf_index)
            .unwrap()
            .id;
        // The audit log signs its own sizes: its paths take a size it has a
        // checkpoint for, which covers both events of the two puts.
        let audit_checkpoint =
            s.rt.block_on(
                s.vault
                    .audit_log()
                    .expect("audit on")
                    .wait_for_checkpoint(2, Duration::from_secs(10)),
            )
            .unwrap();
        let ids = HashMap::from([
            ("{id}", record.clone()),
            ("{size}", size.to_string()),
            ("{*path}", "0/000.p/1".to_string()),
        ]);

        let callers: Vec<(&str, Option<String>, Vec<Role>)> = vec![
            ("no token", None, vec![]),
            ("ingester", Some(ingester.clone()), vec![Role::Ingester]),
            ("auditor", Some(token_for("auditor")), vec![Role::Auditor]),
            ("admin", Some(token_for("admin")), vec![Role::Admin]),
        ];
        for op in OPERATIONS {
            let mut path = concrete(op.path, &ids);
            if op.name.starts_with("audit.") {
                path = concrete(
                    op.path,
                    &HashMap::from([
                        ("{id}", audit_event.clone()),
                        ("{size}", audit_checkpoint.to_string()),
                        ("{*path}", "0/000.p/1".to_string()),
                    ]),
                );
            }
            match op.name {
                "evidence.erase" => {
                    path = concrete(op.path, &HashMap::from([("{id}", to_erase.clone())]))
                }
                "holds.release" => {
                    path = concrete(op.path, &HashMap::from([("{id}", hold.clone())]))
                }
                "retention.delete" => {
                    path = concrete(op.path, &HashMap::from([("{id}", policy.clone())]))
                }
                _ => {}
            }
            if op.name == "log.consistency" || op.name == "audit.consistency" {
                path.push_str("?from=1&to=1");
            }
            if op.name == "audit.tlog.entries" {
                path = "/tlog-audit/tile/entries/000.p/1".into();
            }
            if op.name == "ui.asset" {
                // An asset of this version (anyone may fetch it).
                let version = s
                    .request_as(None, "GET", "/ui/config.json", &[], b"")
                    .json()["version"]
                    .as_str()
                    .unwrap()
                    .to_string();
                path = format!("/ui/s/{version}/app.css");
            }
            if op.name == "cors.preflight" {
                // The preflight of a route anyone may read, whatever
                // public_log_read says.
                path = "/healthz".into();
            }
            if op.name == "import.create" {
                // A valid key: an allowed import is queued (its task then
                // fails on the body, which is no bundle).
                let key = s.vault.evidence_log().verifier_key().replace('+', "%2B");
                path.push_str(&format!("?key={key}"));
            }
            if op.name.starts_with("mirrors.") && op.name != "mirrors.list" {
                path.push_str("?origin=other.example%2Flog&leaf_index=0");
                if op.name == "mirrors.records" {
                    path = "/api/v1/mirrors/records?origin=other.example%2Flog".into();
                }
            }
            for (who, token, roles) in &callers {
                let (headers, body): (Vec<(&str, &[u8])>, &[u8]) = if op.name == "evidence.put" {
                    (vec![("Content-Type", b"text/plain")], who.as_bytes())
                } else if op.name == "task.create" {
                    // A kind this vault does not run: 400 past the table,
                    // which is all this walk is about (the kinds' own
                    // roles are tested in tests/tasks.rs).
                    (
                        vec![("Content-Type", b"application/json")],
                        br#"{"kind":"none"}"#,
                    )
                } else if op.name == "backfill.create" {
                    // One artifact named by digest: an allowed backfill is
                    // queued (202).
                    (
                        vec![("Content-Type", b"text/csv")],
                        b"version,release_date,artifact,sha256,bundle,notes\n\
                          1.0,2024-01-01,,0000000000000000000000000000000000000000000000000000000000000000,,\n",
                    )
                } else if op.name == "evidence.erase" {
                    (
                        vec![("Content-Type", b"application/json")],
                        br#"{"reason":"the walk"}"#,
                    )
                } else if op.name == "holds.create" {
                    (vec![("Content-Type", b"application/json")], nothing)
                } else if op.name == "retention.create" {
                    (vec![("Content-Type", b"application/json")], policy_body)
                } else if op.name == "evidence.stream" {
                    // An empty stream: just its summary line.
                    (vec![("Content-Type", b"application/x-ndjson")], b"")
                } else if op.name == "cors.preflight" {
                    (
                        vec![
                            ("Origin", b"https://verifier.example"),
                            ("Access-Control-Request-Method", b"GET"),
                        ],
                        b"",
                    )
                } else {
                    (vec![], b"")
                };
                let r = s.request_as(token.as_deref(), op.method.as_str(), &path, &headers, body);
                let allowed = match op.access {
                    Access::Open => true,
                    Access::PublicLog => token.is_some() || public_log_read,
                    Access::Roles(_) => scope_for(op, roles.iter().copied()).is_some(),
                };
                let context = format!(
                    "{} {path} as {who} (public_log_read={public_log_read}): {} {}",
                    op.method,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                if allowed && (op.name.starts_with("task.") || op.name.starts_with("mirrors.")) {
                    // Past the table the vault answers: no such task or
                    // mirrored record (404) or kind (400); never a refusal
                    // for the caller's roles.
                    assert!(![401, 403].contains(&r.status), "{context}");
                    assert!(r.status < 500, "{context}");
                } else if allowed {
                    assert!(r.status < 400, "{context}");
                } else if token.is_none() {
                    assert_eq!(r.status, 401, "{context}");
                } else {
                    assert_eq!(r.status, 403, "{context}");
                }
            }
        }

        // Scope `own`: another ingester neither sees nor lists the record.
        let other = token_for("other-ingester");
        let r = s.request_as(
            Some(&other),
            "GET",
            &format!("/api/v1/evidence/{record}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "{}", r.text());
        for suffix in ["/payload", "/proof"] {
            let r = s.request_as(
                Some(&other),
                "GET",
                &format!("/api/v1/evidence/{record}{suffix}"),
                &[],
                b"",
            );
            assert_eq!(r.status, 404, "{suffix}: {}", r.text());
        }
        let page = s
            .request_as(Some(&other), "GET", "/api/v1/evidence", &[], b"")
            .ok_json();
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["ingested_by"] == json!("test:other")),
            "{page}"
        );
        let mine = s
            .request_as(Some(&ingester), "GET", "/api/v1/evidence", &[], b"")
            .ok_json();
        assert!(
            mine["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["ingested_by"] == json!("test:ingester"))
        );
        assert!(!mine["items"].as_array().unwrap().is_empty());
        let all = s
            .request_as(
                Some(&token_for("auditor")),
                "GET",
                "/api/v1/evidence",
                &[],
                b"",
            )
            .ok_json();
        assert!(all["items"].as_array().unwrap().len() > mine["items"].as_array().unwrap().len());
        // The refused read is audited as denied.
        let denied = audit_events(&s)
            .into_values()
            .filter(|e| e.principal == "test:other" && e.outcome == Outcome::Denied)
            .count();
        assert_eq!(denied, 3);
        assert_eq!(
            scope_for(
                OPERATIONS
                    .iter()
                    .find(|o| o.name == "evidence.get")
                    .unwrap(),
                [Role::Ingester]
            ),
            Some(Scope::Own)
        );
    }
}

#[test]
fn every_request_leaves_exactly_one_provable_audit_event() {
    let s = TestServer::start();
    let before = audit_size(&s);
    let ingester = token_for("ingester");
    let auditor = token_for("auditor");
    let mut rids = Vec::new();
    let mut n = 0;
    for i in 0..60 {
        let r = match i % 6 {
            // good put
            0 => s.request_as(
                Some(&ingester),
                "POST",
                "/api/v1/evidence",
                &[("Content-Type", b"text/plain")],
                format!("record {i}").as_bytes(),
            ),
            // forbidden: an auditor cannot put
            1 => s.request_as(
                Some(&auditor),
                "POST",
                "/api/v1/evidence",
                &[("Content-Type", b"text/plain")],
                b"x",
            ),
            // malformed: bad limit
            2 => s.request_as(Some(&auditor), "GET", "/api/v1/evidence?limit=0", &[], b""),
            // unauthenticated
            3 => s.request_as(None, "GET", "/api/v1/evidence", &[], b""),
            // malformed put: no content type
            4 => s.request_as(Some(&ingester), "POST", "/api/v1/evidence", &[], b"y"),
            // good read, and an unknown path
            _ => {
                if i % 12 == 5 {
                    s.request_as(Some(&auditor), "GET", "/api/v1/log", &[], b"")
                } else {
                    s.request_as(None, "GET", "/no/such/thing", &[], b"")
                }
            }
        };
        n += 1;
        rids.push((request_id(&r), r.status));
    }
    // Mutations and refusals are durable before their reply; answered reads
    // are queued for the next group commit: all land within moments, and
    // not one more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_size(&s) < before + n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(audit_size(&s), before + n);
    let events = audit_events(&s);
    assert_eq!(events.len() as u64, before + n);
    let expected_outcome = |status: u16| match status {
        200..=299 => Outcome::Success,
        401 => Outcome::Unauthenticated,
        403 => Outcome::Denied,
        _ => Outcome::Failed,
    };
    for (rid, status) in &rids {
        let e = &events[rid];
        assert_eq!(e.status, *status);
        assert_eq!(e.outcome, expected_outcome(*status), "{e:?}");
        assert_eq!(e.protocol, "http");
        assert_eq!(e.params_digest.len(), 64);
        assert!(!e.client.is_empty());
    }
    for status in [201, 403, 400, 401, 404, 200] {
        assert!(
            rids.iter().any(|(_, s)| *s == status),
            "no {status} in the mix"
        );
    }

    // Each event has an inclusion proof against a signed audit checkpoint,
    // checked offline with the audit log's key.
    let total = audit_size(&s);
    s.rt.block_on(
        s.vault
            .audit_log()
            .expect("audit on")
            .wait_for_checkpoint(total, Duration::from_secs(10)),
    )
    .unwrap();
    let log = s
        .request_as(Some(&auditor), "GET", "/api/v1/audit/log", &[], b"")
        .ok_json();
    let origin = log["origin"].as_str().unwrap().to_string();
    let key = Ed25519Verifier::from_verifier_key(log["verifier_key"].as_str().unwrap()).unwrap();
    let verifiers = Verifiers::new().with(key).unwrap();
    let size = log["checkpoint_size"].as_u64().unwrap();
    assert!(size >= total);
    for (rid, _) in &rids {
        let id = &events[rid].id;
        let r = s.request_as(
            Some(&auditor),
            "GET",
            &format!("/api/v1/audit/events/{id}/proof?tree_size={size}"),
            &[],
            b"",
        );
        let bundle: AuditProofBundle =
            serde_json::from_slice(&r.ok_json().to_string().into_bytes()).unwrap();
        assert_eq!(&bundle.record, &events[rid]);
        let ok = bundle.verify(&verifiers, Some(&origin)).unwrap();
        assert_eq!(ok.tree_size, size);
        // A tampered event does not verify.
        let mut forged = bundle.clone();
        forged.record.status = 200;
        forged.record.outcome = Outcome::Success;
        if forged.record != bundle.record {
            assert!(forged.verify(&verifiers, Some(&origin)).is_err());
        }
    }

    // The audit list API filters, for auditors.
    let page = s
        .request_as(
            Some(&auditor),
            "GET",
            "/api/v1/audit?outcome=unauthenticated&operation=evidence.list&limit=1000",
            &[],
            b"",
        )
        .ok_json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert!(items.iter().all(|e| e["principal"] == json!("anonymous")));
    let page = s
        .request_as(
            Some(&auditor),
            "GET",
            "/api/v1/audit?principal=test%3Aingester&limit=3",
            &[],
            b"",
        )
        .ok_json();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = s
        .request_as(
            Some(&auditor),
            "GET",
            &format!("/api/v1/audit?principal=test%3Aingester&limit=1000&cursor={next}"),
            &[],
            b"",
        )
        .ok_json();
    assert_eq!(page2["items"].as_array().unwrap().len(), 20 - 3);
    let bad = s.request_as(
        Some(&auditor),
        "GET",
        "/api/v1/audit?outcome=maybe",
        &[],
        b"",
    );
    assert_eq!(bad.status, 400);
    // Consistency between two audit checkpoints.
    let c = s
        .request_as(
            Some(&auditor),
            "GET",
            &format!("/api/v1/audit/consistency?from=1&to={size}"),
            &[],
            b"",
        )
        .ok_json();
    assert!(!c["proof"].as_array().unwrap().is_empty());
}

#[test]
fn puts_write_their_audit_event_in_the_same_commit() {
    let s = TestServer::start();
    let ingester = token_for("ingester");
    let before = audit_size(&s);
    let r = s.request_as(
        Some(&ingester),
        "POST",
        "/api/v1/evidence",
        &[
            ("Content-Type", b"application/json"),
            ("X-Evault-Label", b"k=v"),
        ],
        br#"{"ok":true}"#,
    );
    assert_eq!(r.status, 201);
    let id = r.json()["record"]["id"].as_str().unwrap().to_string();
    // A duplicate is its own event, with its own status.
    let dup = s.request_as(
        Some(&ingester),
        "POST",
        "/api/v1/evidence",
        &[
            ("Content-Type", b"application/json"),
            ("X-Evault-Label", b"k=v"),
        ],
        br#"{"ok":true}"#,
    );
    assert_eq!(dup.status, 200);
    assert_eq!(audit_size(&s), before + 2);
    let events = audit_events(&s);
    let e = &events[&request_id(&r)];
    assert_eq!(e.operation, "evidence.put");
    assert_eq!(e.outcome, Outcome::Success);
    assert_eq!(e.status, 201);
    assert_eq!(e.principal, "test:ingester");
    assert_eq!(e.key_id.as_deref(), Some("ingester"));
    assert_eq!(e.auth_method, "service-account");
    assert_eq!(e.resource, format!("/api/v1/evidence/{id}"));
    let d = &events[&request_id(&dup)];
    assert_eq!(d.status, 200);
    assert_eq!(d.resource, format!("/api/v1/evidence/{id}"));
}

#[test]
fn a_revoked_key_stops_working_within_a_second_and_requests_in_flight_finish() {
    let s = TestServer::start();
    let ingester = token_for("ingester");
    let auditor = token_for("auditor");
    let put = |token: &str, body: &[u8]| {
        s.request_as(
            Some(token),
            "POST",
            "/api/v1/evidence",
            &[("Content-Type", b"text/plain")],
            body,
        )
    };
    assert_eq!(put(&ingester, b"before").status, 201);

    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // In flight across the reload: a slow chunked upload by the key
        // about to be revoked, and a steady stream of reads by another key.
        let addr = s.addr;
        let slow_token = ingester.clone();
        let slow = scope.spawn(move || slow_upload(addr, &slow_token));
        let reader = scope.spawn(|| {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(
                    s.request_as(Some(&auditor), "GET", "/api/v1/log", &[], b"")
                        .status,
                );
            }
            statuses
        });
        std::thread::sleep(Duration::from_millis(300));

        // Revoke: the file no longer has the key.
        let mut file = KeystoreFile::load(&s.keystore).unwrap();
        file.keys.retain(|k| k.key_id != "ingester");
        file.save(&s.keystore).unwrap();
        let revoked = Instant::now();
        let mut refused_after = None;
        while revoked.elapsed() < Duration::from_secs(5) {
            if put(&ingester, b"after").status == 401 {
                refused_after = Some(revoked.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = refused_after.expect("the revoked key still works after 5 s");
        assert!(took < Duration::from_secs(1), "revocation took {took:?}");

        let slow_status = slow.join().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let statuses = reader.join().unwrap();
        assert_eq!(
            slow_status, 201,
            "the upload that started before the revocation"
        );
        assert!(!statuses.is_empty());
        assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    });

    // An invalid file is reported and the keys in force stay.
    std::fs::write(&s.keystore, b"{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        s.request_as(Some(&auditor), "GET", "/api/v1/log", &[], b"")
            .status,
        200
    );
    let r = s.request_as(
        Some(&token_for("admin")),
        "POST",
        "/api/v1/admin/service-accounts/reload",
        &[],
        b"",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        s.request_as(Some(&auditor), "GET", "/api/v1/log", &[], b"")
            .status,
        200
    );
}

/// A chunked upload that takes about a second, with `token`; its status.
fn slow_upload(addr: std::net::SocketAddr, token: &str) -> u16 {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        tcp,
        "POST /api/v1/evidence HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for i in 0..10 {
        let chunk = format!("slow chunk {i}\n");
        write!(tcp, "{:x}\r\n{chunk}\r\n", chunk.len()).unwrap();
        tcp.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    tcp.write_all(b"0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_is_audited() {
    let s = TestServer::start_full(
        |_| {},
        |o| {
            o.rate_limit = Some(evault_server::RateLimit {
                per_second: 0.5,
                burst: 2,
            })
        },
        false,
    );
    let auditor = token_for("auditor");
    let statuses: Vec<Resp> = (0..3)
        .map(|_| s.request_as(Some(&auditor), "GET", "/api/v1/log", &[], b""))
        .collect();
    assert_eq!(statuses[0].status, 200);
    assert_eq!(statuses[1].status, 200);
    let limited = &statuses[2];
    assert_eq!(limited.status, 429, "{}", limited.text());
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Other principals have their own bucket.
    assert_eq!(
        s.request_as(Some(&token_for("admin")), "GET", "/api/v1/whoami", &[], b"")
            .status,
        200
    );
    let e = &audit_events(&s)[&request_id(limited)];
    assert_eq!(e.outcome, Outcome::Denied);
    assert_eq!(e.status, 429);
    assert_eq!(e.principal, "test:auditor");
}

#[test]
fn whoami_and_service_accounts_never_show_secrets() {
    let s = TestServer::start();
    let me = s.get("/api/v1/whoami").ok_json();
    assert_eq!(me["principal"], json!(PRINCIPAL));
    assert_eq!(me["auth_method"], json!("service-account"));
    let sa = s.request_as(
        Some(&token_for("admin")),
        "GET",
        "/api/v1/admin/service-accounts",
        &[],
        b"",
    );
    let text = sa.text();
    assert_eq!(sa.status, 200, "{text}");
    assert_eq!(sa.json()["keys"].as_array().unwrap().len(), KEYS.len());
    for (id, _, _) in KEYS {
        let secret = URL_SAFE_NO_PAD.encode(format!("{id:-<40}").as_bytes());
        assert!(!text.contains(&secret));
    }
}

#[test]
fn insecure_mode_accepts_anonymous_and_still_audits() {
    let s = TestServer::start_insecure();
    let before = audit_size(&s);
    let r = s.request_as(
        None,
        "POST",
        "/api/v1/evidence",
        &[("Content-Type", b"text/plain")],
        b"anon",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["record"]["ingested_by"], json!("anonymous"));
    assert_eq!(
        s.request_as(None, "GET", "/api/v1/audit", &[], b"").status,
        200
    );
    // The read's event is queued, not awaited.
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_size(&s) < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(audit_size(&s), before + 2);
}

/// Serves `body` as JSON to every connection on 127.0.0.1, counting them.
fn serve_jwks(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, hits)
}

#[test]
fn oidc_tokens_are_checked_against_a_jwks_the_test_serves() {
    use evault_auth::{Alg, JwksSource, OidcIssuer};
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    const ISSUER: &str = "https://id.test.example";
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = key.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
    let (url, hits) = serve_jwks(jwks.to_string());
    let sign = |kid: &str, claims: Value| {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let claims = |aud: &str| {
        let t = now();
        json!({"iss": ISSUER, "aud": aud, "sub": "alice", "iat": t, "exp": t + 300,
               "roles": ["auditor", "not-an-evault-role"]})
    };
    let issuer = |jwks: JwksSource| OidcIssuer {
        algorithms: vec![Alg::ES256],
        min_refresh_interval: Duration::from_millis(300),
        ..OidcIssuer::new(ISSUER, "evault", jwks)
    };
    let with_oidc = |jwks: JwksSource| {
        move |o: &mut evault_server::ServerOptions| {
            let evault_server::Authentication::Tokens(a) = &o.auth else {
                unreachable!()
            };
            let auth = evault_auth::Authenticator::new(
                a.keystore().clone(),
                evault_auth::OidcVerifier::new(vec![issuer(jwks)]),
                evault_auth::TokenPolicy::default(),
            );
            o.auth = evault_server::Authentication::Tokens(std::sync::Arc::new(auth));
        }
    };

    let s = TestServer::start_full(|_| {}, with_oidc(JwksSource::Url(url)), false);
    let token = sign("k1", claims("evault"));
    let me = s
        .request_as(Some(&token), "GET", "/api/v1/whoami", &[], b"")
        .ok_json();
    assert_eq!(me["principal"], json!(format!("{ISSUER}#alice")));
    assert_eq!(me["auth_method"], json!("oidc"));
    assert_eq!(me["roles"], json!(["auditor"]));
    // The auditor role is what the permission table checks.
    assert_eq!(
        s.request_as(Some(&token), "GET", "/api/v1/audit?limit=1", &[], b"")
            .status,
        200
    );
    let r = s.request_as(
        Some(&token),
        "POST",
        "/api/v1/evidence",
        &[("Content-Type", b"text/plain")],
        b"x",
    );
    assert_eq!(r.status, 403);
    // Wrong audience and unknown key ids are 401; past the minimum interval
    // an unknown kid refreshes the JWKS once, and no more within it.
    let r = s.request_as(
        Some(&sign("k1", claims("other"))),
        "GET",
        "/api/v1/whoami",
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    std::thread::sleep(Duration::from_millis(400));
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        let r = s.request_as(
            Some(&sign("k2", claims("evault"))),
            "GET",
            "/api/v1/whoami",
            &[],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before + 1);
    // The OIDC caller is in the audit trail under its principal.
    let e = &audit_events(&s)[&request_id(&r)];
    assert_eq!(e.outcome, Outcome::Unauthenticated);

    // A JWKS nobody answers and no cached key: fail closed with 503.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/jwks.json", dead.local_addr().unwrap());
    drop(dead);
    let s2 = TestServer::start_full(|_| {}, with_oidc(JwksSource::Url(dead_url)), false);
    let r = s2.request_as(Some(&token), "GET", "/api/v1/whoami", &[], b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let e = &audit_events(&s2)[&request_id(&r)];
    assert_eq!(e.status, 503);
    // Service-account tokens still work meanwhile.
    assert_eq!(s2.get("/api/v1/whoami").status, 200);
}

#[test]
fn a_huge_request_line_still_gets_its_answer_and_its_audit_event() {
    let s = TestServer::start();
    let path = format!("/api/v1/evidence/{}", "x".repeat(60_000));
    let r = s.get(&path);
    assert_eq!(r.status, 404, "{}", r.text());
    let rid = request_id(&r);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = audit_events(&s);
    while !events.contains_key(&rid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        events = audit_events(&s);
    }
    let e = &events[&rid];
    assert!(e.resource.len() < 2048, "{}", e.resource.len());
    assert!(e.resource.ends_with('…'));
    // A refusal with a huge path is durable before its reply.
    let r = s.request_as(
        None,
        "POST",
        &path,
        &[("Content-Type", b"text/plain")],
        b"x",
    );
    assert!(r.status == 404 || r.status == 405, "{}", r.text());
    assert!(audit_events(&s).contains_key(&request_id(&r)));
}
