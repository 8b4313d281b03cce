//! The vault's own task kinds through the product's `evault serve` and the
//! CLI: an evidence bundle of 10,000 records exported by a task, followed,
//! downloaded and verified offline with the server stopped (a byte
//! flipped in each kind of member refused, the member named), then
//! imported into a second vault as a verified mirror; an online fsck task
//! on the same vault.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

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

fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until the evidence log has a signed checkpoint of `size`.
fn wait_for_checkpoint(url: &str, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, text) = common::get_text(&common::agent(), &format!("{url}/tlog/checkpoint"));
        let got: u64 = if status == 200 {
            text.lines()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        if got >= size {
            return;
        }
        assert!(Instant::now() < deadline, "no checkpoint of size {size}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a task of `kind`, follows it to its end and returns its final
/// `task show --json`.
fn run_task(url: &str, kind: &str, params: &str) -> Value {
    let id = ok(&evault(&[
        "task", "start", kind, "--params", params, "--server", url,
    ]))
    .trim()
    .to_string();
    assert!(!id.is_empty());
    let watched = evault(&["task", "watch", &id, "--server", url]);
    let shown = ok(&evault(&["task", "show", &id, "--json", "--server", url]));
    let task: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}\n{task:#}",
        show(&watched)
    );
    assert!(
        String::from_utf8_lossy(&watched.stdout).contains("succeeded"),
        "{}",
        show(&watched)
    );
    task
}

#[test]
fn export_bundle_and_fsck_run_as_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let url = server.url.clone();

    // 10,000 records in one NDJSON stream, half of them labelled "even".
    let n = 10_000;
    let body: String = (0..n)
        .map(|i| {
            let batch = if i % 2 == 0 { "even" } else { "odd" };
            format!(
                "{{\"content_type\":\"text/plain\",\"payload_base64\":\"{}\",\"labels\":{{\"batch\":\"{batch}\"}}}}\n",
                base64_of(&format!("record {i}"))
            )
        })
        .collect();
    let mut resp = common::agent()
        .post(&format!("{url}/api/v1/evidence/stream"))
        .header("Authorization", common::bearer())
        .header("Content-Type", "application/x-ndjson")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = resp.body_mut().read_to_string().unwrap();
    let accepted = answer
        .lines()
        .filter(|l| l.contains("\"status\":\"accepted\""))
        .count();
    assert_eq!(accepted, n, "{}", &answer[..answer.len().min(2000)]);
    wait_for_checkpoint(&url, n as u64);
    let (_, log) = common::get_json(&common::agent(), &format!("{url}/api/v1/log"));
    let key = log["verifier_key"].as_str().unwrap().to_string();

    // The export: a task, followed to its end, its progress complete.
    let task = run_task(
        &url,
        "export_bundle",
        r#"{"labels":{"batch":"even"},"payloads":true}"#,
    );
    assert_eq!(task["state"], "succeeded", "{task:#}");
    assert_eq!(task["summary"]["records"], 5_000, "{task:#}");
    assert_eq!(task["summary"]["payloads"], 5_000, "{task:#}");
    assert!(task["summary"]["tree_size"].as_u64().unwrap() >= n as u64);
    assert_eq!(
        task["progress"]["done"], task["progress"]["total"],
        "{task:#}"
    );
    let id = task["id"].as_str().unwrap();
    let bundle = tmp.path().join("even.evb");
    ok(&evault(&[
        "task",
        "result",
        id,
        "--out",
        bundle.to_str().unwrap(),
        "--server",
        &url,
    ]));

    // Bad parameters are refused before anything runs.
    let out = evault(&[
        "task",
        "start",
        "export_bundle",
        "--params",
        r#"{"lables":{}}"#,
        "--server",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lables"),
        "{}",
        show(&out)
    );

    // fsck online, while the vault serves: clean; its report is the result.
    let task = run_task(&url, "fsck", "{}");
    assert_eq!(task["summary"]["clean"], true, "{task:#}");
    let report = tmp.path().join("fsck.json");
    ok(&evault(&[
        "task",
        "result",
        task["id"].as_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
        "--server",
        &url,
    ]));
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["clean"], true);
    assert_eq!(report["total_findings"], 0);

    // Offline, with the server gone: the bundle verifies with the key alone.
    drop(server);
    let out = ok(&evault(&[
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        &key,
        "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["records"], 5_000);
    assert_eq!(v["payloads"], 5_000);
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(5_000));
    // One flipped byte anywhere in the file is refused (exit 1).
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    let tampered = tmp.path().join("tampered.evb");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = evault(&["verify", tampered.to_str().unwrap(), "--key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    // One byte flipped inside each kind of member in turn (the archive
    // re-compressed, so only that member differs): refused, and the report
    // names the member.
    let tar = zstd::decode_all(&std::fs::read(&bundle).unwrap()[..]).unwrap();
    let members = tar_members(&tar);
    let payload = members
        .iter()
        .find(|(name, _)| name.starts_with("payloads/"))
        .map(|(name, _)| name.clone())
        .expect("a payload member");
    for name in [
        "checkpoint",
        "records.jsonl",
        "proofs.jsonl",
        payload.as_str(),
    ] {
        let (_, data) = members.iter().find(|(n, _)| n == name).unwrap();
        let mut t = tar.clone();
        t[data.start + data.len() / 2] ^= 1;
        let out = verify_tar(tmp.path(), &t, &key);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", show(&out));
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            report.contains(&format!("FAILED  bundle {name}  member_digest: SHA-256 is")),
            "{name}: {}",
            show(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"),
            "{name}: {}",
            show(&out)
        );
    }
    // The manifest has no digest of its own: a changed tree size in it
    // disagrees with the signed checkpoint.
    let (_, data) = members.iter().find(|(n, _)| n == "manifest.json").unwrap();
    let at = data.start
        + find(&tar[data.clone()], b"\"tree_size\":").expect("tree_size")
        + "\"tree_size\":".len();
    let mut t = tar.clone();
    t[at] = if t[at] == b'9' { b'8' } else { t[at] + 1 };
    let out = verify_tar(tmp.path(), &t, &key);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("FAILED  bundle manifest.json  manifest: the manifest describes"),
        "{}",
        show(&out)
    );

    // Imported into a second vault: a verified mirror of the first's
    // records, never leaves of its own log.
    let second = Server::start(
        &tmp.path().join("second"),
        &["--origin", "second.example/vault"],
    );
    let url2 = second.url.clone();
    let (_, own) = common::get_json(&common::agent(), &format!("{url2}/api/v1/log"));
    let bundle_path = bundle.to_str().unwrap();
    // With the second vault's own key: refused, nothing imported.
    let out = evault(&[
        "import",
        bundle_path,
        "--key",
        own["verifier_key"].as_str().unwrap(),
        "--server",
        &url2,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not verify"),
        "{}",
        show(&out)
    );
    let out = ok(&evault(&[
        "import",
        bundle_path,
        "--key",
        &key,
        "--server",
        &url2,
    ]));
    assert!(
        out.contains("imported 5000 records of") && out.contains("(5000 new, 5000 payloads new"),
        "{out}"
    );
    let mirrors = authed_json(&format!("{url2}/api/v1/mirrors"));
    let origin = mirrors["items"][0]["origin"].as_str().unwrap().to_string();
    assert_eq!(mirrors["items"][0]["records"], 5_000, "{mirrors:#}");
    assert_eq!(
        mirrors["items"].as_array().map(Vec::len),
        Some(1),
        "{mirrors:#}"
    );
    let (_, own_log) = common::get_json(&common::agent(), &format!("{url2}/api/v1/log"));
    assert_ne!(own_log["origin"], origin.as_str());
    // The second vault's own log holds none of them (its audit events only).
    assert_eq!(
        authed_json(&format!("{url2}/api/v1/evidence?limit=1"))["items"],
        serde_json::json!([])
    );
    // A mirrored record, proven offline with the first vault's key alone.
    let enc = |s: &str| s.replace('/', "%2F");
    let page = authed_json(&format!(
        "{url2}/api/v1/mirrors/records?origin={}&limit=2",
        enc(&origin)
    ));
    let leaf = page["items"][1]["leaf_index"].as_u64().unwrap();
    assert_eq!(page["next_after"], leaf);
    let proof = authed_json(&format!(
        "{url2}/api/v1/mirrors/proof?origin={}&leaf_index={leaf}",
        enc(&origin)
    ));
    let proof_file = tmp.path().join("mirrored-proof.json");
    std::fs::write(&proof_file, proof.to_string()).unwrap();
    drop(second);
    let out = ok(&evault(&[
        "verify",
        "--proof",
        proof_file.to_str().unwrap(),
        "--key",
        &key,
    ]));
    assert!(
        out.contains(&format!("leaf {leaf}")) || out.contains("verified"),
        "{out}"
    );
}

/// GET with the test token, as JSON (200 only).
fn authed_json(url: &str) -> Value {
    let (status, v) = common::get_json(&common::agent(), url);
    assert_eq!(status, 200, "{url}: {v}");
    v
}

/// Writes `tar` zstd-compressed and runs `evault verify` on it.
fn verify_tar(dir: &std::path::Path, tar: &[u8], key: &str) -> Output {
    let path = dir.join("flipped.evb");
    std::fs::write(&path, zstd::encode_all(tar, 3).unwrap()).unwrap();
    evault(&["verify", path.to_str().unwrap(), "--key", key])
}

/// The members of a ustar archive: name and the byte range of its data.
fn tar_members(tar: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let h = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&h[124..136]).trim_matches(|c: char| c == '\0' || c == ' '),
            8,
        )
        .unwrap();
        out.push((name, at + 512..at + 512 + size));
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
