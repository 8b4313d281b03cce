//! `evault erase`, `evault hold`, `evault retention` against a running
//! vault, and `evault compact` on the stopped one.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, agent, bearer, get_json, token};
use serde_json::Value;

fn evault(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env_remove("EVAULT_SERVER")
        .env_remove("EVAULT_CONFIG")
        .env_remove("EVAULT_TOKEN")
        .env_remove("EVAULT_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run evault");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().expect("exit code"), json, stderr)
}

fn remote(url: &str, args: &[&str]) -> (i32, Value, String) {
    let mut all = args.to_vec();
    all.extend(["--server", url, "--token", token(), "--json"]);
    evault(&all)
}

#[test]
fn erase_hold_retention_and_compact_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let url = server.url.clone();
    let mut resp = agent()
        .post(format!("{url}/api/v1/evidence"))
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", bearer())
        .send(&b"cli erase marker"[..])
        .expect("POST evidence");
    assert_eq!(resp.status().as_u16(), 201);
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let id = v["record"]["id"].as_str().unwrap().to_string();

    // A hold blocks the erasure: exit 3 (refused), the detail names it.
    let (code, hold, err) = remote(
        &url,
        &[
            "hold",
            "create",
            "--label",
            "nothing=matches",
            "--reason",
            "x",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let hold_id = hold["id"].as_str().unwrap().to_string();
    let (code, list, err) = remote(&url, &["hold", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(list["holds"][0]["id"], hold_id.as_str());
    let (code, released, err) = remote(&url, &["hold", "release", &hold_id]);
    assert_eq!(code, 0, "{err}");
    assert!(released["released_at"].is_string());
    let (code, _, _) = remote(&url, &["hold", "create", "--label", "bad", "--reason", "x"]);
    assert_eq!(code, 2, "a label without = is a usage error");

    let (code, _, err) = remote(&url, &["erase", &id, "--reason", ""]);
    assert_eq!(code, 3, "{err}");
    let (code, erased, err) = remote(&url, &["erase", &id, "--reason", "cli test"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(erased["erased"][0]["id"], id.as_str());
    let (status, _) = get_json(&agent(), &format!("{url}/api/v1/evidence/{id}/payload"));
    // get_json sends no token: 401; with one, 410 (the server tests cover it).
    assert!(status == 401 || status == 410, "{status}");

    let (code, policy, err) = remote(
        &url,
        &[
            "retention",
            "set",
            "--name",
            "logs",
            "--keep-for",
            "90d",
            "--label",
            "k=v",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(policy["keep_for_seconds"], 90 * 86400);
    let pid = policy["id"].as_str().unwrap().to_string();
    let (code, list, _) = remote(&url, &["retention", "list"]);
    assert_eq!(code, 0);
    assert_eq!(list["policies"][0]["id"], pid.as_str());
    let (code, _, err) = remote(&url, &["retention", "delete", &pid]);
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = remote(&url, &["retention", "delete", &pid]);
    assert_eq!(code, 3, "deleting twice is refused");

    // Compact refuses a running vault, then rewrites the stopped one.
    let d = data.to_str().unwrap();
    let (code, _, _) = evault(&["compact", "--data-dir", d, "--json"]);
    assert_ne!(code, 0, "a running vault's directory is locked");
    assert!(server.terminate(Duration::from_secs(30)), "clean shutdown");
    let (code, out, err) = evault(&["compact", "--data-dir", d, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out["bytes_after"].as_u64().unwrap() > 0);
    let (code, _, err) = evault(&["fsck", "--data-dir", d, "--json"]);
    assert_eq!(code, 0, "{err}");
}
