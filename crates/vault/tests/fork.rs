//! Never sign a fork: each log's latest signed head lives outside the
//! store (the state directory), the checkpointer refuses a tree that does
//! not extend it, and start-up refuses a store that is behind it (a
//! restored backup).

mod nodes;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use evault_vault::{
    FileHeadStore, HeadKey, HeadStore, LogId, PutOutcome, Result, SignedHead, SignedHeadStore,
    Vault, VaultConfig, VaultError,
};

const ORIGIN: &str = "test.example/fork";

struct Dirs {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    state: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        data: tmp.path().join("data"),
        state: tmp.path().join("state"),
        _tmp: tmp,
    }
}

fn config(d: &Dirs) -> VaultConfig {
    let mut c = VaultConfig::new(&d.data);
    c.state_dir = Some(d.state.clone());
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    c
}

async fn put(v: &Vault, body: &[u8]) -> PutOutcome {
    nodes::put(v, body).await.unwrap()
}

/// Opens the vault, appends `bodies`, stops it (final checkpoints signed)
/// and returns the evidence log's final size.
async fn grow(d: &Dirs, bodies: impl IntoIterator<Item = String>) -> u64 {
    let v = Vault::open(config(d)).await.unwrap();
    for b in bodies {
        put(&v, b.as_bytes()).await;
    }
    let stopped = v.shutdown().await.unwrap();
    assert_eq!(stopped.evidence_checkpoint, stopped.evidence_size);
    stopped.evidence_size
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The head files in the state directory, by content.
fn head_files(state: &Path) -> Vec<(PathBuf, SignedHead)> {
    let mut out: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, SignedHead::from_checkpoint(&text).unwrap())
        })
        .collect();
    out.sort_by_key(|(p, _)| p.clone());
    out
}

/// The evidence log's head file (its checkpoint's origin is ORIGIN).
fn evidence_head(state: &Path) -> (PathBuf, SignedHead) {
    head_files(state)
        .into_iter()
        .find(|(_, h)| h.checkpoint.starts_with(&format!("{ORIGIN}\n")))
        .expect("an evidence head file")
}

#[test]
fn file_head_store_is_private_atomic_and_keyed_by_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let heads = FileHeadStore::new(&dir);
    let a = HeadKey {
        origin: "a.example/log",
        verifier_key: "a.example/log+01234567+AAAA",
    };
    let b = HeadKey {
        origin: "a.example/log",
        verifier_key: "a.example/log+89abcdef+BBBB",
    };
    assert_ne!(heads.path(a), heads.path(b), "one file per log");
    assert_eq!(heads.load(a).unwrap(), None);

    let root = [7u8; 32];
    let note = format!(
        "a.example/log\n42\n{}\n\n\u{2014} a.example/log AAAAAA==\n",
        STANDARD.encode(root)
    );
    let head = SignedHead::from_checkpoint(&note).unwrap();
    assert_eq!((head.size, head.root), (42, root));
    heads.save(a, &head).unwrap();
    assert_eq!(heads.load(a).unwrap(), Some(head.clone()));
    assert_eq!(heads.load(b).unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(heads.path(a)).unwrap(),
        note,
        "the file is the signed checkpoint"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&heads.path(a)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    // Replaced whole, no temporary left behind.
    heads.save(a, &head).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    std::fs::write(heads.path(a), "not a checkpoint").unwrap();
    let err = heads.load(a).unwrap_err();
    assert!(
        err.to_string()
            .contains(&heads.path(a).display().to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkpoint_moves_the_head_outside_the_store() {
    let d = dirs();
    let size = grow(&d, (0..5).map(|i| format!("record {i}"))).await;
    assert_eq!(size, 5);
    // Two logs, two files, none inside the data directory.
    let files = head_files(&d.state);
    assert_eq!(files.len(), 2, "{files:?}");
    let (_, head) = evidence_head(&d.state);
    assert_eq!(head.size, 5);
    // The head is the latest stored checkpoint, byte for byte.
    let v = Vault::open(config(&d)).await.unwrap();
    let latest = v.evidence_log().latest_checkpoint().await.unwrap();
    assert_eq!(latest.note, head.checkpoint);
    assert_eq!(v.not_ready(), None);
    v.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_is_refused_naming_both_heads() {
    let d = dirs();
    grow(&d, (0..6).map(|i| format!("first {i}"))).await;
    let backup = d._tmp.path().join("backup");
    copy_dir(&d.data, &backup);
    let (_, at_backup) = evidence_head(&d.state);
    grow(&d, (0..6).map(|i| format!("second {i}"))).await;
    let (_, signed) = evidence_head(&d.state);
    assert_eq!((at_backup.size, signed.size), (6, 12));

    // Restore: the data directory goes back, the state directory stays.
    std::fs::remove_dir_all(&d.data).unwrap();
    copy_dir(&backup, &d.data);
    let err = match Vault::open(config(&d)).await {
        Err(e) => e,
        Ok(_) => panic!("a store behind its signed head must be refused"),
    };
    assert!(matches!(err, VaultError::Inconsistent(_)), "{err:?}");
    let msg = err.to_string();
    for part in [
        "size 12".to_string(),
        "size 6".to_string(),
        STANDARD.encode(signed.root),
        STANDARD.encode(at_backup.root),
        "base64".to_string(),
        "docs/OPERATIONS.md".to_string(),
        "replay the missing leaves".to_string(),
        "new log".to_string(),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from: {msg}");
    }
    // Nothing was signed: the head is unchanged.
    assert_eq!(evidence_head(&d.state).1, signed);
}

/// A head store held by the test, standing in for an HSM.
#[derive(Clone, Default)]
struct MemHeads(Arc<Mutex<BTreeMap<String, SignedHead>>>);

impl SignedHeadStore for MemHeads {
    fn load(&self, log: HeadKey<'_>) -> Result<Option<SignedHead>> {
        Ok(self.0.lock().unwrap().get(log.origin).cloned())
    }
    fn save(&self, log: HeadKey<'_>, head: &SignedHead) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .insert(log.origin.to_string(), head.clone());
        Ok(())
    }
    fn describe(&self, log: HeadKey<'_>) -> String {
        format!("memory:{}", log.origin)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_refuses_a_fork_and_the_vault_is_not_ready() {
    let d = dirs();
    let mem = MemHeads::default();
    let mut c = config(&d);
    c.head_store = Some(HeadStore(Arc::new(mem.clone())));
    let v = Vault::open(c).await.unwrap();
    for i in 0..3 {
        put(&v, format!("r{i}").as_bytes()).await;
    }
    let log = v.evidence_log();
    log.wait_for_checkpoint(3, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(mem.load(head_key(ORIGIN)).unwrap().unwrap().size, 3);

    // Another writer (a second copy of the log) signed a different tree
    // of size 3 with this key: this vault's next tree is no extension.
    mem.save(
        head_key(ORIGIN),
        &SignedHead {
            size: 3,
            root: [9; 32],
            checkpoint: "elsewhere".into(),
        },
    )
    .unwrap();
    put(&v, b"r3").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let why = loop {
        if let Some(why) = v.not_ready() {
            break why;
        }
        assert!(Instant::now() < deadline, "the fork was not refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        why.contains("refusing to sign a fork of the evidence log"),
        "{why}"
    );
    assert!(why.contains(&STANDARD.encode([9u8; 32])), "{why}");
    // Nothing was signed past the fork.
    assert_eq!(log.checkpoint_size(), 3);
    assert_eq!(log.latest_checkpoint().await.unwrap().size, 3);
    assert_eq!(mem.load(head_key(ORIGIN)).unwrap().unwrap().root, [9; 32]);
    // And the final checkpoint is not signed either.
    let err = v.shutdown().await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
}

fn head_key(origin: &str) -> HeadKey<'_> {
    HeadKey {
        origin,
        verifier_key: "",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_with_another_root_at_a_stored_size_is_refused_at_start() {
    let d = dirs();
    let mem = MemHeads::default();
    let mut c = config(&d);
    c.head_store = Some(HeadStore(Arc::new(mem.clone())));
    let v = Vault::open(c.clone()).await.unwrap();
    for i in 0..4 {
        put(&v, format!("r{i}").as_bytes()).await;
    }
    v.shutdown().await.unwrap();
    drop(v);
    let good = mem.load(head_key(ORIGIN)).unwrap().unwrap();
    assert_eq!(good.size, 4);

    // A head whose signature does not verify is refused.
    let mut bad = good.clone();
    bad.checkpoint = good.checkpoint.replace(ORIGIN, "other.example/fork");
    mem.save(head_key(ORIGIN), &bad).unwrap();
    let err = Vault::open(c.clone()).await.err().expect("refused");
    assert!(err.to_string().contains("does not verify"), "{err}");

    // A properly signed head of size 2 from another tree (made by a vault
    // with the same key and origin but other records): refused, naming the
    // root the store has at that size.
    let other = dirs();
    std::fs::create_dir_all(&other.data).unwrap();
    std::fs::copy(d.data.join("log.key"), other.data.join("log.key")).unwrap();
    std::fs::copy(d.data.join("audit.key"), other.data.join("audit.key")).unwrap();
    let ov = Vault::open(config(&other)).await.unwrap();
    put(&ov, b"x0").await;
    put(&ov, b"x1").await;
    ov.shutdown().await.unwrap();
    let (_, forked) = evidence_head(&other.state);
    assert_eq!(forked.size, 2);
    mem.save(head_key(ORIGIN), &forked).unwrap();
    let err = Vault::open(c).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("at size 2 has root"), "{msg}");
    assert!(msg.contains(&STANDARD.encode(forked.root)), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_behind_the_store_is_accepted_and_advanced() {
    let d = dirs();
    grow(&d, (0..3).map(|i| format!("a{i}"))).await;
    let (path, old) = evidence_head(&d.state);
    let old_text = std::fs::read_to_string(&path).unwrap();
    grow(&d, (0..3).map(|i| format!("b{i}"))).await;
    assert_eq!(evidence_head(&d.state).1.size, 6);

    // The state directory restored from an older backup than the data:
    // the store extends it, so the vault starts and moves it on.
    std::fs::write(&path, old_text).unwrap();
    assert_eq!(evidence_head(&d.state).1, old);
    assert_eq!(grow(&d, ["c".to_string()]).await, 7);
    assert_eq!(evidence_head(&d.state).1.size, 7);

    // A plain restart with everything intact works too.
    assert_eq!(grow(&d, ["d".to_string()]).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_head_is_written_from_the_verified_latest_checkpoint() {
    let d = dirs();
    grow(&d, (0..4).map(|i| format!("a{i}"))).await;
    let (_, head) = evidence_head(&d.state);
    // As after an upgrade from a version without heads.
    std::fs::remove_dir_all(&d.state).unwrap();
    let v = Vault::open(config(&d)).await.unwrap();
    let (_, written) = evidence_head(&d.state);
    assert_eq!(written, head);
    assert_eq!(head_files(&d.state).len(), 2, "the audit log's too");
    put(&v, b"more").await;
    v.shutdown().await.unwrap();
    drop(v);
    assert_eq!(evidence_head(&d.state).1.size, 5);
    // The audit log is guarded the same way.
    let v = Vault::open(config(&d)).await.unwrap();
    assert!(v.log(LogId::Audit).is_ok());
    v.shutdown().await.unwrap();
}
