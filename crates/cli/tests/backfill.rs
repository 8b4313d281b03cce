//! `evault backfill` against `evault serve` with a `[backfill] dir`: a dry
//! run that logs nothing, a run whose bad checksum exits 1 with the item
//! named and the report written, a re-run that adds nothing, and a JSON
//! inventory.

mod common;

use std::process::{Command, Output};

use common::Server;
use serde_json::Value;
use sha2::Digest as _;

fn evault(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env("EVAULT_TOKEN", common::token())
        .output()
        .expect("run evault")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tree_size(url: &str) -> u64 {
    let (status, log) = common::get_json(&common::agent(), &format!("{url}/api/v1/log"));
    assert_eq!(status, 200, "{log}");
    // Leaves durably committed (the task's writes are, once it ends).
    log["tree_size"].as_u64().unwrap()
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn backfill_dry_run_errors_and_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("releases");
    std::fs::create_dir_all(files.join("v1")).unwrap();
    std::fs::write(files.join("v1/a.tar.gz"), b"a").unwrap();
    std::fs::write(files.join("v1/b.tar.gz"), b"b").unwrap();
    std::fs::write(files.join("v1/c.tar.gz"), b"c").unwrap();
    let config = tmp.path().join("evault.toml");
    std::fs::write(
        &config,
        format!(
            "origin = \"test.example/backfill\"\n[backfill]\ndir = {:?}\n",
            files.display().to_string()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let url = server.url.clone();

    let inventory = tmp.path().join("releases.csv");
    std::fs::write(
        &inventory,
        format!(
            "version,release_date,artifact,sha256,bundle,notes\n\
             1.0.0,2021-01-01,v1/a.tar.gz,{},,\n\
             1.0.0,2021-01-01,v1/b.tar.gz,{},,wrong on purpose\n\
             1.1.0,2021-06-01T12:00:00Z,v1/c.tar.gz,,,\n",
            hex(&sha2::Sha256::digest(b"a")),
            hex(&sha2::Sha256::digest(b"not b")),
        ),
    )
    .unwrap();
    let inv = inventory.to_str().unwrap();

    // A dry run: exit 1 (one error), nothing logged.
    let plan = tmp.path().join("plan.json");
    let out = evault(&[
        "backfill",
        inv,
        "--dry-run",
        "--out",
        plan.to_str().unwrap(),
        "--server",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("dry run: 3 item(s): 2 dry-run, 1 error"),
        "{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1.0.0 v1/b.tar.gz: item 1: checksum mismatch"),
        "{}",
        show(&out)
    );
    assert_eq!(report(&plan)["counts"]["dry-run"], 2);
    assert_eq!(tree_size(&url), 0);

    // The run: two records, the same error.
    let first = tmp.path().join("first.json");
    let out = evault(&[
        "backfill",
        inv,
        "--out",
        first.to_str().unwrap(),
        "--server",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 item(s): 2 backfilled, 1 error"),
        "{}",
        show(&out)
    );
    let r = report(&first);
    assert_eq!(r["items"][0]["status"], "backfilled");
    assert_eq!(r["items"][1]["status"], "error");
    assert_eq!(r["items"][2]["status"], "backfilled");
    assert_eq!(tree_size(&url), 2);

    // The re-run adds nothing.
    let out = evault(&["backfill", inv, "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 item(s): 2 already-present, 1 error"),
        "{}",
        show(&out)
    );
    assert_eq!(tree_size(&url), 2);

    // A JSON inventory without errors: exit 0, `--json` counts.
    let json_inv = tmp.path().join("more.json");
    std::fs::write(
        &json_inv,
        r#"[{"version":"2.0.0","release_date":"2022-02-02","artifacts":[{"path":"v1/b.tar.gz"}]}]"#,
    )
    .unwrap();
    let out = evault(&[
        "backfill",
        json_inv.to_str().unwrap(),
        "--json",
        "--server",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["backfilled"], 1, "{v}");
    assert_eq!(tree_size(&url), 3);

    // A bad inventory is refused by the server (exit 3), naming the line.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(
        &bad,
        "version,release_date,artifact,sha256,bundle,notes\n1,someday,v1/a.tar.gz,,,\n",
    )
    .unwrap();
    let out = evault(&["backfill", bad.to_str().unwrap(), "--server", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CSV line 2: release_date"),
        "{}",
        show(&out)
    );
    drop(server);
}
