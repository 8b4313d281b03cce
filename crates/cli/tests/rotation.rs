//! Key rotation end to end: `evault keys rotate` on a running vault, a
//! monitor (`--entries`) that follows it by itself, checkpoints before,
//! during and after verified with the right key sets, `evault keys retire`,
//! and the key set kept across a restart.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn evault_as(args: &[&str], token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env("EVAULT_TOKEN", token)
        .env_remove("EVAULT_CONFIG")
        .output()
        .expect("run evault")
}

fn evault(args: &[&str]) -> Output {
    evault_as(args, common::token())
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: Output) -> Value {
    serde_json::from_str(&ok(out)).expect("JSON")
}

/// Puts one record and waits until a checkpoint covers it; saves that
/// checkpoint to `dir/<name>` and returns its path.
fn put_and_save(url: &str, dir: &Path, name: &str) -> String {
    let file = dir.join(format!("{name}.txt"));
    std::fs::write(&file, name).unwrap();
    let v = json(evault(&[
        "put",
        file.to_str().unwrap(),
        "--server",
        url,
        "--json",
    ]));
    let leaf = v[0]["result"]["record"]["leaf_index"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::get_json(&common::agent(), &format!("{url}/api/v1/log")).1["checkpoint_size"]
        .as_u64()
        .unwrap()
        <= leaf
    {
        assert!(Instant::now() < deadline, "no checkpoint past leaf {leaf}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let path = dir.join(format!("{name}.cp"));
    ok(evault(&[
        "checkpoint",
        "--out",
        path.to_str().unwrap(),
        "--server",
        url,
    ]));
    path.to_str().unwrap().to_string()
}

/// `evault consistency` of two saved checkpoints with `keys` (and policy).
fn consistency(url: &str, old: &str, new: &str, keys: &[&str], all: bool) -> Output {
    let mut args = vec!["consistency", "--old", old, "--new", new, "--server", url];
    for k in keys {
        args.extend(["--key", k]);
    }
    if all {
        args.extend(["--key-policy", "all"]);
    }
    evault(&args)
}

#[test]
fn a_vault_rotates_its_key_and_a_monitor_follows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path();
    let data = w.join("data");
    let heads = w.join("heads");
    let extra = ["--state-dir", heads.to_str().unwrap()];
    let server = Server::start(&data, &extra);
    let url = server.url.clone();
    let (_, info) = common::get_json(&common::agent(), &format!("{url}/api/v1/log"));
    let a = info["verifier_key"].as_str().unwrap().to_string();
    let state = w.join("monitor.json");
    let state_arg = state.to_str().unwrap().to_string();
    let monitor = |url: &str| {
        evault(&[
            "monitor",
            "--key",
            &a,
            "--no-audit",
            "--state",
            &state_arg,
            "--entries",
            "--server",
            url,
            "--json",
        ])
    };

    // Before: A signs; the monitor pins A.
    let before = put_and_save(&url, w, "before");
    let r = monitor(&url);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));

    // Only an admin may rotate.
    let ingester = common::token_with(&[evault_auth::Role::Ingester]);
    let out = evault_as(&["keys", "rotate", "--server", &url], &ingester);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // Rotate: B signs beside A during the overlap.
    let keys = json(evault(&[
        "keys",
        "rotate",
        "--overlap",
        "1h",
        "--server",
        &url,
        "--json",
    ]));
    assert_eq!(keys["keys"][0]["verifier_key"], a.as_str(), "{keys}");
    assert_eq!(keys["keys"][0]["state"], "retiring");
    assert_eq!(keys["keys"][1]["state"], "active");
    let b = keys["keys"][1]["verifier_key"]
        .as_str()
        .unwrap()
        .to_string();
    // A second rotation waits for the first.
    let out = evault(&["keys", "rotate", "--server", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{}",
        show(&out)
    );

    let during = put_and_save(&url, w, "during");
    // Before: signed by A; during: by A and by B.
    ok(consistency(&url, &before, &during, &[&a], true));
    ok(consistency(&url, &before, &during, &[&a, &b], false));
    // The monitor learns B from the key event A signed.
    let r = monitor(&url);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    let events = report["logs"][0]["key_events"].to_string();
    assert!(events.contains(&format!("added {b}")), "{report}");

    // End the overlap: A is retired; only B signs.
    let keys = json(evault(&["keys", "retire", "--server", &url, "--json"]));
    assert_eq!(keys["keys"][0]["state"], "retired", "{keys}");
    let retired_at = keys["keys"][0]["retired_at"].as_u64().unwrap();
    let after = put_and_save(&url, w, "after");
    ok(consistency(&url, &during, &after, &[&b], true));
    ok(consistency(&url, &before, &after, &[&a, &b], false));
    // After: not signed by A any more.
    for (keys, all) in [
        (&[a.as_str()][..], false),
        (&[a.as_str(), b.as_str()], true),
    ] {
        let out = consistency(&url, &during, &after, keys, all);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    }

    // The monitor follows: it learns the retirement from the log.
    let r = monitor(&url);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    let events = report["logs"][0]["key_events"].to_string();
    assert!(
        events.contains(&format!("retired {a} at leaf {retired_at}")),
        "{report}"
    );
    let st: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st["logs"][0]["retired_keys"][0]["retired_at"], retired_at);

    // A restart keeps the key set; B goes on signing alone.
    assert!(server.terminate(Duration::from_secs(60)));
    let server = Server::start(&data, &extra);
    let url = server.url.clone();
    let listed = ok(evault(&["keys", "list", "--server", &url]));
    assert!(
        listed.contains("retired") && listed.contains(&b),
        "{listed}"
    );
    let again = put_and_save(&url, w, "again");
    ok(consistency(&url, &after, &again, &[&b], true));
    let r = monitor(&url);
    assert_eq!(r.status.code(), Some(0), "{}", show(&r));
    assert!(server.terminate(Duration::from_secs(60)));
}
