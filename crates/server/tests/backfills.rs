//! `POST /api/v1/backfills`: a CSV or JSON inventory starts a
//! `backfill_releases` task (202, Location), whose result is the report;
//! a bad inventory is a 400 naming its line and stores nothing; an auditor
//! gets 403; a body of another media type 415.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Resp, TestServer, token_for};
use serde_json::{Value, json};
use sha2::Digest as _;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A server whose backfill directory holds `a.bin` and `b.bin`.
fn start() -> (TestServer, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a.bin"), b"release a").unwrap();
    std::fs::write(files.path().join("b.bin"), b"release b").unwrap();
    let dir: PathBuf = files.path().to_path_buf();
    let s = TestServer::start_with(move |c| c.backfill_dir = Some(dir), false);
    (s, files)
}

fn post(s: &TestServer, key: &str, query: &str, ct: &str, body: &[u8]) -> Resp {
    s.request_as(
        Some(&token_for(key)),
        "POST",
        &format!("/api/v1/backfills{query}"),
        &[("Content-Type", ct.as_bytes())],
        body,
    )
}

fn get(s: &TestServer, key: &str, path: &str) -> Resp {
    s.request_as(Some(&token_for(key)), "GET", path, &[], b"")
}

fn assert_problem(r: &Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
}

/// Waits for the task to end and returns it with its report.
fn finished(s: &TestServer, key: &str, id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let r = get(s, key, &format!("/api/v1/tasks/{id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let t = r.json();
        if ["succeeded", "failed", "cancelled"].contains(&t["state"].as_str().unwrap()) {
            break t;
        }
        assert!(Instant::now() < deadline, "task never ended: {t}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(task["state"], "succeeded", "{task}");
    let r = get(s, key, &format!("/api/v1/tasks/{id}/result"));
    assert_eq!(r.status, 200, "{}", r.text());
    (task, r.json())
}

fn csv() -> String {
    format!(
        "version,release_date,artifact,sha256,bundle,notes\n\
         1.0.0,2024-01-02,a.bin,{},,first\n\
         1.1.0,2024-02-03T04:05:06Z,b.bin,{},,\"bad, on purpose\"\n",
        hex(&sha2::Sha256::digest(b"release a")),
        hex(&sha2::Sha256::digest(b"not b")),
    )
}

#[test]
fn an_inventory_starts_a_backfill_task_whose_result_is_the_report() {
    let (s, _files) = start();
    let r = post(
        &s,
        "ingester",
        "",
        "text/csv; charset=utf-8",
        csv().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let task = r.json();
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/api/v1/tasks/{id}").as_str())
    );
    assert_eq!(task["kind"], "backfill_releases");
    assert_eq!(task["principal"], "test:ingester");
    assert_eq!(task["params"], json!({"format": "csv", "dry_run": false}));
    let (task, report) = finished(&s, "ingester", &id);
    assert_eq!(task["progress"], json!({"done": 2, "total": 2}));
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["counts"]["backfilled"], 1);
    assert_eq!(report["counts"]["error"], 1);
    assert_eq!(report["items"][0]["status"], "backfilled");
    assert_eq!(report["items"][0]["checksum_verified"], true);
    assert_eq!(report["items"][1]["status"], "error");
    assert!(
        report["items"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch")
    );
    let record = report["items"][0]["record_id"].as_str().unwrap();
    let r = get(&s, "auditor", &format!("/api/v1/evidence/{record}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["content_type"],
        "application/vnd.evault.release-backfill+json"
    );
    assert_eq!(r.json()["labels"]["release.version"], "1.0.0");

    // A dry run of the JSON form, by an admin: nothing more is logged.
    let size = s.vault.evidence_log().head().size;
    let inventory = json!([{
        "version": "2.0.0",
        "release_date": "2025-01-01",
        "artifacts": [{"path": "b.bin"}],
    }]);
    let r = post(
        &s,
        "admin",
        "?dry_run=true",
        "application/json",
        inventory.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (_, report) = finished(&s, "admin", &id);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["items"][0]["status"], "dry-run");
    assert_eq!(
        report["items"][0]["sha256"],
        hex(&sha2::Sha256::digest(b"release b"))
    );
    assert_eq!(s.vault.evidence_log().head().size, size);
}

#[test]
fn bad_requests_are_refused_and_store_nothing() {
    let (s, _files) = start();
    let bad = "version,release_date,artifact,sha256,bundle,notes\n\
               1.0.0,2024-01-02,a.bin,,,\n\
               1.1.0,someday,b.bin,,,\n";
    assert_problem(
        &post(&s, "ingester", "", "text/csv", bad.as_bytes()),
        400,
        "CSV line 3: release_date",
    );
    assert_problem(
        &post(
            &s,
            "ingester",
            "",
            "application/json",
            br#"[{"version":"1"}]"#,
        ),
        400,
        "JSON release 0",
    );
    assert_problem(
        &post(
            &s,
            "ingester",
            "",
            "text/csv",
            b"version,release_date,artifact,sha256,bundle,notes\n1,2024-01-01,../etc/passwd,,,\n",
        ),
        400,
        "must not contain `..`",
    );
    assert_problem(
        &post(
            &s,
            "ingester",
            "?dry_run=maybe",
            "text/csv",
            csv().as_bytes(),
        ),
        400,
        "dry_run",
    );
    assert_problem(
        &post(&s, "ingester", "?force=1", "text/csv", csv().as_bytes()),
        400,
        "force",
    );
    assert_problem(
        &post(&s, "ingester", "", "application/xml", csv().as_bytes()),
        415,
        "text/csv or application/json",
    );
    // An auditor may not backfill.
    let r = post(&s, "auditor", "", "text/csv", csv().as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    // No task was created by any of these.
    let r = get(&s, "all", "/api/v1/tasks");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"], json!([]));
    assert_eq!(s.vault.evidence_log().head().size, 0);
}
