//! `evault witness` end to end: two witness processes cosign a real vault's
//! log as it grows; a fork of that log (a second vault with a copy of its
//! key and origin, holding other records) is refused by a witness, whose
//! state does not move and which goes on cosigning the honest log; every
//! other refusal leaves the state alone; a restarted witness keeps its
//! state; a bad configuration is refused before anything is served.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Server, agent, bearer};
use evault_note::{Checkpoint, Ed25519Signer, Signer, Verifiers, generate_ed25519, open, sign};
use evault_witness::{AddCheckpoint, MAX_BODY, origin_hash};

const ORIGIN: &str = "test.example/log";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn evault(cwd: &Path, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_evault"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EVAULT_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run evault");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `evault keys generate NAME --type TY --out FILE` in `dir`: the verifier key.
fn generate(dir: &Path, name: &str, ty: &str, file: &str) -> String {
    let out = evault(
        dir,
        &["keys", "generate", name, "--type", ty, "--out", file],
    );
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.trim().to_string()
}

/// A witness's configuration file for the test log, listening on a free port.
fn write_config(dir: &Path, name: &str, keys: &[&str], log_vkey: &str) -> PathBuf {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("\"file:{}\"", dir.join(k).display()))
        .collect();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ncosigner_keys = [{}]\n\
             requests_per_minute = 600\n\n[[log]]\norigin = \"{ORIGIN}\"\nkeys = [\"{log_vkey}\"]\n",
            dir.join(format!("{name}-state")).display(),
            keys.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A running `evault witness`.
struct WitnessProc {
    child: Child,
    url: String,
    /// Its cosigner verifier keys.
    vkeys: Vec<String>,
}

impl WitnessProc {
    fn start(config: &Path, vkeys: &[&str]) -> WitnessProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_evault"))
            .args(["witness", "--config"])
            .arg(config)
            .env_remove("EVAULT_CONFIG")
            .env("EVAULT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn evault witness");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let mut url = None;
        // Lines end when the process exits, so this cannot hang on a dead child.
        for line in lines.by_ref() {
            let line = line.expect("stderr");
            if let Some(u) = line.strip_prefix("evault: witness serving ") {
                url = Some(u.trim().to_string());
                break;
            }
            seen.push(line);
        }
        let url = url.unwrap_or_else(|| panic!("evault witness did not start: {seen:#?}"));
        // The announced keys are the ones the test generated.
        for k in vkeys {
            assert!(
                seen.iter().any(|l| l.ends_with(k)),
                "{k} not announced: {seen:#?}"
            );
        }
        // Keep draining, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        WitnessProc {
            child,
            url,
            vkeys: vkeys.iter().map(|k| k.to_string()).collect(),
        }
    }

    /// SIGTERM, then waits for the exit: whether it was a success.
    fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "evault witness ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn add(&self, body: &[u8]) -> Reply {
        let mut resp = agent()
            .post(format!("{}/add-checkpoint", self.url))
            .send(body)
            .expect("POST add-checkpoint");
        Reply::read(&mut resp)
    }

    fn latest(&self) -> Reply {
        let mut resp = agent()
            .get(format!("{}/{}/checkpoint", self.url, origin_hash(ORIGIN)))
            .call()
            .expect("GET checkpoint");
        Reply::read(&mut resp)
    }

    /// Whether `lines` are exactly one cosignature of each of its keys on
    /// `note`'s checkpoint.
    fn check_cosignatures(&self, note: &str, lines: &str) {
        let text = &note[..note.find("\n\n").expect("a signed note") + 1];
        let cosigned = format!("{text}\n{lines}");
        let opened = open(cosigned.as_bytes(), &verifiers(&self.vkeys))
            .unwrap_or_else(|e| panic!("cosignatures do not verify: {e}\n{lines}"));
        assert_eq!(opened.verified.len(), self.vkeys.len(), "{lines}");
        assert_eq!(lines.lines().count(), self.vkeys.len(), "{lines}");
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verifiers(keys: &[impl AsRef<str>]) -> Verifiers {
    let mut v = Verifiers::new();
    for k in keys {
        v.insert_boxed(evault_note::verifier_for(k.as_ref()).unwrap())
            .unwrap();
    }
    v
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn read(resp: &mut ureq::http::Response<ureq::Body>) -> Reply {
        Reply {
            status: resp.status().as_u16(),
            content_type: resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            body: resp.body_mut().read_to_string().expect("body"),
        }
    }
}

/// Puts `n` text records tagged `tag` into the vault at `url`.
fn put(url: &str, tag: &str, n: usize) {
    for i in 0..n {
        let resp = agent()
            .post(format!("{url}/api/v1/evidence"))
            .header("Content-Type", "text/plain")
            .header("Authorization", bearer())
            .send(format!("{tag} record {i}").as_bytes())
            .expect("POST evidence");
        assert_eq!(resp.status().as_u16(), 201, "put {tag} {i}");
    }
}

/// The vault's signed checkpoint once it covers `size` records.
fn checkpoint_at(url: &str, size: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut resp = agent()
            .get(format!("{url}/tlog/checkpoint"))
            .call()
            .expect("GET /tlog/checkpoint");
        if resp.status().as_u16() == 200 {
            let note = resp.body_mut().read_to_string().unwrap();
            let text = &note[..note.find("\n\n").unwrap() + 1];
            let got = Checkpoint::parse(text).unwrap().size;
            assert!(got <= size, "the log is at {got}, beyond {size}");
            if got == size {
                return note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} at {url}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The vault's consistency proof between two of its checkpoints.
fn consistency(url: &str, from: u64, to: u64) -> Vec<[u8; 32]> {
    let (status, v) = common::get_json(
        &agent(),
        &format!("{url}/api/v1/tree/consistency?from={from}&to={to}"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["from"].as_u64(), v["to"].as_u64()),
        (Some(from), Some(to))
    );
    v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

fn request(old: u64, proof: Vec<[u8; 32]>, note: &str) -> Vec<u8> {
    AddCheckpoint {
        old_size: old,
        proof,
        note,
    }
    .encode()
    .into_bytes()
}

fn root_of(note: &str) -> [u8; 32] {
    Checkpoint::parse(&note[..note.find("\n\n").unwrap() + 1])
        .unwrap()
        .root_hash
}

#[test]
fn two_witnesses_cosign_a_log_and_refuse_its_fork() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_vkey = generate(d, ORIGIN, "ed25519", "log.key");
    let a_key = generate(d, "witness-a.example", "ed25519-cosignature", "a.key");
    let b_key = generate(d, "witness-b.example", "ed25519-cosignature", "b.key");
    let b_pq_key = generate(d, "witness-b.example/pq", "ml-dsa-44", "b-pq.key");
    // The fork's operator has the log's key (a copy keeps the mode 0600).
    std::fs::copy(d.join("log.key"), d.join("fork.key")).unwrap();

    let a_config = write_config(d, "a", &["a.key"], &log_vkey);
    let b_config = write_config(d, "b", &["b.key", "b-pq.key"], &log_vkey);
    let a = WitnessProc::start(&a_config, &[&a_key]);
    let mut b = WitnessProc::start(&b_config, &[&b_key, &b_pq_key]);
    assert_eq!(b.latest().status, 404, "nothing cosigned yet");

    let key_file = |name: &str| d.join(name).to_str().unwrap().to_string();
    let log_key = key_file("log.key");
    let honest = Server::start(
        &d.join("honest"),
        &["--origin", ORIGIN, "--key-file", &log_key],
    );

    // First contact: old size 0, no proof.
    put(&honest.url, "honest-1", 2);
    let c2 = checkpoint_at(&honest.url, 2);
    for w in [&a, &b] {
        let r = w.add(&request(0, vec![], &c2));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.content_type, "text/plain; charset=utf-8");
        w.check_cosignatures(&c2, &r.body);
    }

    // Growth, with the log's consistency proof.
    put(&honest.url, "honest-2", 2);
    let c4 = checkpoint_at(&honest.url, 4);
    let proof = consistency(&honest.url, 2, 4);
    for w in [&a, &b] {
        let r = w.add(&request(2, proof.clone(), &c4));
        assert_eq!(r.status, 200, "{r:?}");
        w.check_cosignatures(&c4, &r.body);
        // The monitoring view: the log's checkpoint, with the cosignatures.
        let latest = w.latest();
        assert_eq!(latest.status, 200, "{latest:?}");
        assert!(latest.body.starts_with(&c4), "{}", latest.body);
        let mut all = w.vkeys.clone();
        all.push(log_vkey.clone());
        let opened = open(latest.body.as_bytes(), &verifiers(&all)).unwrap();
        assert_eq!(opened.verified.len(), all.len(), "{}", latest.body);
    }
    let b_state = b.latest().body;

    // A fork: the same key and origin, other records.
    let fork_key = key_file("fork.key");
    let fork = Server::start(
        &d.join("fork"),
        &["--origin", ORIGIN, "--key-file", &fork_key],
    );
    put(&fork.url, "forged-3", 4);
    let f4 = checkpoint_at(&fork.url, 4);
    assert_ne!(root_of(&f4), root_of(&c4), "the fork has other records");
    // Same size, other root: 422.
    let r = b.add(&request(4, vec![], &f4));
    assert_eq!(r.status, 422, "{r:?}");
    // Larger, with the fork's own proof from its size 4: 422.
    put(&fork.url, "forged-4", 1);
    let f5 = checkpoint_at(&fork.url, 5);
    let r = b.add(&request(4, consistency(&fork.url, 4, 5), &f5));
    assert_eq!(r.status, 422, "{r:?}");
    // As if new to the witness: 409, naming the size it holds.
    let r = b.add(&request(0, vec![], &f5));
    assert_eq!(
        (r.status, r.content_type.as_str(), r.body.as_str()),
        (409, "text/x.tlog.size", "4\n")
    );
    assert_eq!(
        b.latest().body,
        b_state,
        "the fork moved the witness's state"
    );

    // Every other refusal leaves the state alone too.
    let stranger = Ed25519Signer::from_signer_key(
        generate_ed25519("other.example/log")
            .unwrap()
            .0
            .expose_secret(),
    )
    .unwrap();
    let unknown = sign(
        &Checkpoint::new("other.example/log", 1, [1; 32]).to_text(),
        &[&stranger as &dyn Signer],
    )
    .unwrap();
    let forger =
        Ed25519Signer::from_signer_key(generate_ed25519(ORIGIN).unwrap().0.expose_secret())
            .unwrap();
    let c4_text = &c4[..c4.find("\n\n").unwrap() + 1];
    let forged = sign(c4_text, &[&forger as &dyn Signer]).unwrap();
    // The log's own signature line with one byte of the signature changed.
    let sig_at = c4.rfind(' ').unwrap() + 10;
    let mut broken = c4.clone().into_bytes();
    broken[sig_at] = if broken[sig_at] == b'A' { b'B' } else { b'A' };
    let broken = String::from_utf8(broken).unwrap();
    let mut oversized = request(4, vec![], &c4);
    oversized.resize(MAX_BODY + 1, b'\n');
    for (what, body, status) in [
        ("unknown origin", request(0, vec![], &unknown), 404),
        (
            "a key the log does not have",
            request(4, vec![], &forged),
            403,
        ),
        ("a broken signature", request(4, vec![], &broken), 403),
        ("garbage", b"not a request\n".to_vec(), 400),
        (
            "old size beyond the checkpoint",
            request(5, vec![], &c4),
            400,
        ),
    ] {
        let r = b.add(&body);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(b.latest().body, b_state, "{what} moved the state");
    }
    // Over the size limit, with `Expect: 100-continue` so the refusal comes
    // before the body is sent.
    let mut resp = agent()
        .post(format!("{}/add-checkpoint", b.url))
        .header("Expect", "100-continue")
        .send(&oversized[..])
        .expect("POST oversized");
    let r = Reply::read(&mut resp);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(b.latest().body, b_state, "oversized moved the state");

    // The honest log goes on, and both witnesses go on cosigning it.
    put(&honest.url, "honest-5", 2);
    let c6 = checkpoint_at(&honest.url, 6);
    let proof = consistency(&honest.url, 4, 6);
    for w in [&a, &b] {
        let r = w.add(&request(4, proof.clone(), &c6));
        assert_eq!(r.status, 200, "{r:?}");
        w.check_cosignatures(&c6, &r.body);
    }
    let b_state = b.latest().body;
    assert!(b_state.starts_with(&c6), "{b_state}");

    // A restarted witness serves, and goes on from, what it cosigned.
    assert!(b.terminate(), "evault witness did not stop cleanly");
    b = WitnessProc::start(&b_config, &[&b_key, &b_pq_key]);
    assert_eq!(b.latest().body, b_state);
    let r = b.add(&request(0, vec![], &c6));
    assert_eq!((r.status, r.body.as_str()), (409, "6\n"));

    assert!(a.terminate(), "evault witness did not stop cleanly");
    assert!(b.terminate(), "evault witness did not stop cleanly");
}

/// `GET /api/v1/log` of the vault at `url`, once `ok` holds for it.
fn log_info_until(
    url: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, v) = common::get_json(&agent(), &format!("{url}/api/v1/log"));
        assert_eq!(status, 200, "{v}");
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_vault_is_reported_witnessed_only_once_both_witness_processes_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_vkey = generate(d, ORIGIN, "ed25519", "log.key");
    let a_key = generate(d, "witness-a.example", "ed25519-cosignature", "a.key");
    let b_key = generate(d, "witness-b.example", "ed25519-cosignature", "b.key");
    let a = WitnessProc::start(&write_config(d, "a", &["a.key"], &log_vkey), &[&a_key]);
    let b_config = write_config(d, "b", &["b.key"], &log_vkey);
    let b = WitnessProc::start(&b_config, &[&b_key]);
    let serve_config = d.join("serve.toml");
    std::fs::write(
        &serve_config,
        format!(
            "witness_threshold = 2\nwitness_interval = \"50ms\"\n\n\
             [[witness]]\nname = \"witness-a.example\"\nurl = \"{}\"\nkeys = [\"{a_key}\"]\n\n\
             [[witness]]\nname = \"witness-b.example\"\nurl = \"{}/\"\nkeys = [\"{b_key}\"]\n",
            a.url, b.url
        ),
    )
    .unwrap();
    let log_key = d.join("log.key").to_str().unwrap().to_string();
    let vault = Server::start(
        &d.join("vault"),
        &[
            "--origin",
            ORIGIN,
            "--key-file",
            &log_key,
            "--config",
            serve_config.to_str().unwrap(),
        ],
    );
    let url = vault.url.clone();
    let witnessed = |v: &serde_json::Value| {
        let size = v["checkpoint_size"].as_u64().unwrap();
        v["witnesses"]["witnessed_size"].as_u64() == Some(size)
    };

    // Both up: the checkpoint is witnessed, and served with both
    // witnesses' cosignatures beside the log's signature.
    put(&url, "one", 2);
    let v = log_info_until(&url, "2 of 2", |v| {
        v["checkpoint_size"].as_u64() == Some(2) && witnessed(v)
    });
    assert_eq!(v["witnesses"]["threshold"], 2, "{v}");
    assert_eq!(v["witnesses"]["total"], 2, "{v}");
    let note = checkpoint_at(&url, 2);
    for key in [&log_vkey, &a_key, &b_key] {
        let opened = open(note.as_bytes(), &verifiers(&[key])).expect("signed by it");
        assert_eq!(opened.verified.len(), 1, "{key}: {note}");
    }

    // B is stopped: A still cosigns, but 1 of 2 is not witnessed.
    let b_addr = b.url.trim_start_matches("http://").to_string();
    assert!(b.terminate(), "evault witness did not stop cleanly");
    put(&url, "two", 1);
    let v = log_info_until(&url, "A to cosign size 3", |v| {
        v["witnesses"]["items"][0]["acknowledged_size"].as_u64() == Some(3)
    });
    assert_eq!(v["checkpoint_size"], 3, "{v}");
    assert_eq!(v["witnesses"]["witnessed_size"], 2, "not witnessed: {v}");
    assert!(v["witnesses"]["items"][1]["last_error"].is_string(), "{v}");
    let note = checkpoint_at(&url, 3);
    assert!(open(note.as_bytes(), &verifiers(&[&a_key])).is_ok());
    assert!(open(note.as_bytes(), &verifiers(&[&b_key])).is_err());

    // B is back, with its state: the vault catches up from the size B
    // holds, and the checkpoint counts.
    // (At the address the vault knows.)
    let text = std::fs::read_to_string(&b_config).unwrap();
    std::fs::write(
        &b_config,
        text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{b_addr}\""),
        ),
    )
    .unwrap();
    let b = WitnessProc::start(&b_config, &[&b_key]);
    assert_eq!(b.url, format!("http://{b_addr}"));
    let v = log_info_until(&url, "2 of 2 again", witnessed);
    assert_eq!(v["witnesses"]["witnessed_size"], 3, "{v}");
    let note = checkpoint_at(&url, 3);
    assert!(
        open(note.as_bytes(), &verifiers(&[&b_key])).is_ok(),
        "{note}"
    );
    assert!(a.terminate() && b.terminate());
}

#[test]
fn a_bad_configuration_is_refused_before_serving() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_vkey = generate(d, ORIGIN, "ed25519", "log.key");
    generate(d, "witness.example", "ed25519-cosignature", "w.key");
    let run = |config: &Path| {
        let out = evault(d, &["witness", "--config", config.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr.contains(&config.display().to_string()),
            "{out:?}"
        );
        assert!(!out.stderr.contains("serving"), "{out:?}");
        out.stderr
    };

    // A key file others can read.
    std::fs::set_permissions(d.join("w.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = write_config(d, "open", &["w.key"], &log_vkey);
    let err = run(&config);
    let key = d.join("w.key").display().to_string();
    assert!(
        err.contains("cosigner_keys[0]")
            && err.contains(&key)
            && err.contains("group or others")
            && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(d.join("w.key"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // A log's key as a cosigner key.
    let config = write_config(d, "logkey", &["log.key"], &log_vkey);
    let err = run(&config);
    assert!(
        err.contains("0x01") && err.contains("ed25519-cosignature"),
        "{err}"
    );

    // An unknown key in the file: named.
    let config = d.join("typo.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(write_config(d, "typo", &["w.key"], &log_vkey))
            .unwrap()
            .replace("requests_per_minute", "request_per_minute"),
    )
    .unwrap();
    let err = run(&config);
    assert!(err.contains("request_per_minute"), "{err}");

    // A log key that is not one.
    let config = write_config(d, "badlog", &["w.key"], "not-a-key");
    let err = run(&config);
    assert!(err.contains(ORIGIN), "{err}");

    // No --config at all.
    let out = evault(d, &["witness"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--config"), "{out:?}");
}
