//! Verifying against a key set: a vault signing with Ed25519 and ML-DSA-44
//! (`--pq-signer`); `evault verify` and `consistency` take either key, both
//! (`--key` repeated, or a file with `verifier_keys` one per line), and with
//! `--key-policy all` refuse a checkpoint that lacks one of the signatures.

mod common;

use std::process::{Command, Output};

use common::Server;

fn evault(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .env("EVAULT_TOKEN", common::token())
        .env_remove("EVAULT_CONFIG")
        .output()
        .expect("run evault")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "evault failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NOT VERIFIED"), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
}

/// `note` without its signature lines by key IDs other than the first.
fn only_first_signature(note: &str) -> String {
    let mut seen = false;
    note.lines()
        .filter(|l| {
            if !l.starts_with('\u{2014}') {
                return true;
            }
            let first = !seen;
            seen = true;
            first
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_dual_signed_log_verifies_with_either_key_or_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let data = w.join("data");
    let pq = format!("file:{}", data.join("log-mldsa.key").display());
    let server = Server::start(&data, &["--pq-signer", &pq]);
    let url = server.url.clone();
    let put = |body: &str| {
        let file = w.join("r.txt");
        std::fs::write(&file, body).unwrap();
        let out = ok(&evault(&[
            "put",
            file.to_str().unwrap(),
            "--server",
            &url,
            "--json",
        ]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["result"]["record"]["id"].as_str().unwrap().to_string()
    };
    let save_checkpoint = |name: &str| {
        let path = w.join(name);
        ok(&evault(&[
            "checkpoint",
            "--out",
            path.to_str().unwrap(),
            "--server",
            &url,
        ]));
        path
    };
    let id = put("one");
    let proof = w.join("proof.json");
    ok(&evault(&[
        "prove",
        &id,
        "--out",
        proof.to_str().unwrap(),
        "--server",
        &url,
    ]));
    let old = save_checkpoint("old.cp");
    put("two");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while common::get_json(&common::agent(), &format!("{url}/api/v1/log")).1["checkpoint_size"] != 2
    {
        assert!(std::time::Instant::now() < deadline, "no checkpoint of 2");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let proof_json = w.join("consistency.json");
    let new = save_checkpoint("new.cp");
    let (_, log) = common::get_json(&common::agent(), &format!("{url}/api/v1/log"));
    let keys: Vec<String> = log["verifier_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2, "{log}");
    let (ed, ml) = (keys[0].as_str(), keys[1].as_str());
    let key_file = w.join("keys.txt");
    std::fs::write(&key_file, format!("{ed}\n{ml}\n")).unwrap();
    let key_file = key_file.to_str().unwrap();
    let (p, o, n) = (
        proof.to_str().unwrap(),
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    );
    // Fetched once, then offline.
    ok(&evault(&[
        "consistency",
        "--old",
        o,
        "--new",
        n,
        "--key",
        ed,
        "--out",
        proof_json.to_str().unwrap(),
        "--server",
        &url,
    ]));
    // The monitor pins both keys, from the file, under "all".
    let state = w.join("monitor.json");
    let out = evault(&[
        "monitor",
        "--server",
        &url,
        "--key",
        key_file,
        "--key-policy",
        "all",
        "--no-audit",
        "--state",
        state.to_str().unwrap(),
    ]);
    ok(&out);
    let pinned = std::fs::read_to_string(&state).unwrap();
    assert!(pinned.contains("\"key_policy\": \"all\""), "{pinned}");
    assert!(pinned.contains(ml), "{pinned}");
    // --key-policy alone names no log: a usage error, not a silent no-op.
    let out = evault(&[
        "monitor",
        "--key-policy",
        "all",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    server.kill();
    let c = proof_json.to_str().unwrap();

    for keys in [
        &["--key", ed][..],
        &["--key", ml],
        &["--key", ed, "--key", ml, "--key-policy", "all"],
        &["--key", key_file, "--key-policy", "all"],
    ] {
        let verify = [&["verify", "--proof", p][..], keys].concat();
        let out = ok(&evault(&verify));
        assert!(out.starts_with("verified:"), "{keys:?}: {out}");
        let consistent = [
            &["consistency", "--old", o, "--new", n, "--proof", c][..],
            keys,
        ]
        .concat();
        ok(&evault(&consistent));
    }

    // The same checkpoint with its ML-DSA-44 line cut off: enough for any
    // one key that signed it, refused when both are required.
    let cut = w.join("cut.cp");
    std::fs::write(
        &cut,
        only_first_signature(&std::fs::read_to_string(&new).unwrap()),
    )
    .unwrap();
    let cut = cut.to_str().unwrap();
    ok(&evault(&[
        "consistency",
        "--old",
        o,
        "--new",
        cut,
        "--proof",
        c,
        "--key",
        ed,
        "--key",
        ml,
    ]));
    refused(
        &evault(&[
            "consistency",
            "--old",
            o,
            "--new",
            cut,
            "--proof",
            c,
            "--key",
            key_file,
            "--key-policy",
            "all",
        ]),
        "--new is not signed by",
    );
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof).unwrap()).unwrap();
    let proof_cut = w.join("proof-cut.cp");
    std::fs::write(
        &proof_cut,
        only_first_signature(bundle["checkpoint"].as_str().unwrap()),
    )
    .unwrap();
    let proof_cut = proof_cut.to_str().unwrap();
    ok(&evault(&[
        "verify",
        "--proof",
        p,
        "--checkpoint",
        proof_cut,
        "--key",
        ed,
    ]));
    refused(
        &evault(&[
            "verify",
            "--proof",
            p,
            "--checkpoint",
            proof_cut,
            "--key",
            ed,
            "--key",
            ml,
            "--key-policy",
            "all",
        ]),
        "--key-policy all",
    );
    // Only the ML-DSA-44 key, against the cut checkpoint: not verified.
    refused(
        &evault(&[
            "consistency",
            "--old",
            o,
            "--new",
            cut,
            "--proof",
            c,
            "--key",
            ml,
        ]),
        "--key is",
    );
    // A key list with nothing in it is a usage error.
    let empty = w.join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let out = evault(&["verify", "--proof", p, "--key", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
