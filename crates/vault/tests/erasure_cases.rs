//! Erasure edge cases: retention never takes bytes an unexpired record
//! shares; records the vault logged itself are not erasable; a put racing
//! an erasure of the same bytes never loses an acknowledged payload; the
//! erased bytes leave the database file itself (not only the log); the
//! caps on holds and policies.

#[macro_use]
mod drivers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use evault_store::Selector;
use evault_vault::{PayloadData, PutRequest, Reader, Vault, VaultConfig, VaultError};

const ORIGIN: &str = "test.example/vault";

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.store = drivers::store();
    c.state_dir = Some(dir.join("state"));
    c.origin = Some(ORIGIN.into());
    c.checkpoint_interval = Duration::from_millis(20);
    // Big enough for an inline payload that spills onto overflow pages.
    c.inline_max = 64 * 1024;
    // Sweeps run from the tests, not on a timer.
    c.retention_interval = Duration::from_secs(3600);
    c
}

async fn put_as(
    v: &Vault,
    principal: &str,
    body: &[u8],
    labels: &[(&str, &str)],
) -> Result<evault_verify::Evidence, VaultError> {
    let mut up = v.upload();
    up.write(body).await?;
    let payload = up.finish().await?;
    Ok(v.put(PutRequest {
        content_type: "application/json".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload,
        principal: principal.into(),
        idempotency_key: None,
        audit: None,
    })
    .await?
    .record)
}

async fn put(v: &Vault, body: &[u8], labels: &[(&str, &str)]) -> evault_verify::Evidence {
    put_as(v, "sa:ci", body, labels).await.unwrap()
}

fn admin() -> Reader {
    Reader::all("admin")
}

async fn read_payload(v: &Vault, id: &str) -> Result<Vec<u8>, VaultError> {
    let (_, data) = v.payload(&admin(), id).await?;
    Ok(match data {
        PayloadData::Inline(b) => b,
        PayloadData::File(mut f) => {
            let mut out = Vec::new();
            while let Some(chunk) = f.next_chunk().await? {
                out.extend_from_slice(&chunk);
            }
            out
        }
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn sweep(v: &Vault) -> evault_vault::erasure::SweepReport {
    v.sweep_retention(&|_| {}, &|| false).await.unwrap()
}

/// Sweeps until `done` holds of a sweep's report (the records it waits for
/// have expired by the vault's clock), and returns that report.
async fn sweep_until(
    v: &Vault,
    done: impl Fn(&evault_vault::erasure::SweepReport) -> bool,
) -> evault_vault::erasure::SweepReport {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = sweep(v).await;
        if done(&r) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "never expired: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_every_store! {
    /// A `{env=test, 1 s}` policy does not erase the bytes of an `env=prod`
    /// record ingested just now with the same payload: the group is skipped
    /// (and counted) until every sharer is expired. A request erasure still
    /// erases every sharer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_spares_bytes_an_unexpired_record_shares() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let body = b"{\"shared\":\"d41d8cd9\"}";
        let test = put(&v, body, &[("env", "test")]).await;
        let alone = put(&v, b"{\"alone\":1}", &[("env", "test")]).await;
        v.create_retention(
            "admin",
            "test data",
            Selector {
                labels: labels(&[("env", "test")]),
                content_type: None,
            },
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        // Expired: poll (ingestion time is the vault's clock).
        sweep_until(&v, |r| r.erased.contains(&alone.id)).await;
        // The first sweep erased the test record too (no sharer then): log
        // the bytes again under test, then under prod, just now.
        let test2 = match read_payload(&v, &test.id).await {
            Ok(_) => test.clone(),
            Err(VaultError::Gone { .. }) => put(&v, body, &[("env", "test"), ("n", "2")]).await,
            Err(e) => panic!("{e}"),
        };
        let prod = put(&v, body, &[("env", "prod")]).await;
        // Poll until test2 has expired (it is then skipped, never erased).
        let r = sweep_until(&v, |r| r.skipped_shared.contains(&test2.id)).await;
        assert!(r.skipped_shared.contains(&test2.id), "{r:?}");
        assert!(!r.erased.contains(&test2.id), "{r:?}");
        assert!(!r.erased.contains(&prod.id), "{r:?}");
        assert_eq!(read_payload(&v, &prod.id).await.unwrap(), body);
        assert_eq!(read_payload(&v, &test2.id).await.unwrap(), body);

        // A request erasure takes the bytes from every record holding them.
        let erased = v.erase("admin", &prod.id, "subject request").await.unwrap();
        let ids: Vec<_> = erased.iter().map(|e| e.id.as_str()).collect();
        assert!(ids.contains(&prod.id.as_str()) && ids.contains(&test2.id.as_str()));
        assert!(matches!(
            read_payload(&v, &test2.id).await,
            Err(VaultError::Gone { .. })
        ));
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    /// Records the vault logs itself (tombstones, key events; principal
    /// `evault`) are part of its own history: neither a request nor retention
    /// erases them, nor a record sharing their bytes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_the_vault_logged_are_not_erasable() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let own = put_as(&v, "evault", b"{\"key\":\"event\"}", &[])
            .await
            .unwrap();
        match v.erase("admin", &own.id, "why not").await {
            Err(VaultError::Conflict(why)) => assert!(why.contains("vault itself"), "{why}"),
            other => panic!("the vault's own record was erased: {other:?}"),
        }
        // A user record with the same bytes: the bytes stay.
        let user = put(&v, b"{\"key\":\"event\"}", &[("k", "v")]).await;
        match v.erase("admin", &user.id, "why not").await {
            Err(VaultError::Conflict(why)) => assert!(why.contains(&own.id), "{why}"),
            other => panic!("bytes the vault logged were erased: {other:?}"),
        }
        v.create_retention("admin", "all", Selector::default(), Duration::from_secs(1))
            .await
            .unwrap();
        let r = sweep_until(&v, |r| r.skipped_shared.contains(&user.id)).await;
        assert!(
            !r.erased.contains(&own.id) && !r.erased.contains(&user.id),
            "{r:?}"
        );
        assert!(r.skipped_shared.contains(&user.id), "{r:?}");
        assert!(read_payload(&v, &own.id).await.is_ok());
        assert!(read_payload(&v, &user.id).await.is_ok());
        v.shutdown().await.unwrap();
    }
}

on_every_store! {
    /// Puts of the same (external) bytes racing their erasure: every put the
    /// vault acknowledged with a live record can read its payload back, and
    /// every erased record answers Gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_put_racing_an_erasure_of_its_bytes_keeps_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.inline_max = 16; // every body below goes to the blob directory
        let v = Vault::open(c).await.unwrap();
        for round in 0..24u32 {
            let body = format!("{{\"race\":{round},\"pad\":\"{}\"}}", "x".repeat(64)).into_bytes();
            let first = put(&v, &body, &[("round", &round.to_string())]).await;
            let (v1, v2, b2) = (v.clone(), v.clone(), body.clone());
            let id = first.id.clone();
            let eraser = tokio::spawn(async move { v1.erase("admin", &id, "race").await });
            let putter =
                tokio::spawn(async move { put_as(&v2, "sa:other", &b2, &[("round", "again")]).await });
            let erased = eraser.await.unwrap();
            let again = putter.await.unwrap().unwrap();
            match erased {
                Ok(_) | Err(VaultError::Conflict(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
            for id in [&first.id, &again.id] {
                match read_payload(&v, id).await {
                    Ok(b) => assert_eq!(b, body, "round {round}"),
                    Err(VaultError::Gone { .. }) => {}
                    Err(e) => panic!("round {round}: an acknowledged payload was lost: {e}"),
                }
            }
        }
        v.shutdown().await.unwrap();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.into_iter()
        .filter(|p| match std::fs::read(p) {
            Ok(bytes) => contains(&bytes, needle),
            // The checkpointer renames its temp files while we walk; a
            // file that vanished holds nothing now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => panic!("{}: {e}", p.display()),
        })
        .collect()
}

/// The bytes are in `evault.db` itself before the erasure (an earlier
/// erasure truncated the log into it), so finding them nowhere afterwards
/// proves the erasure removed them, small and spilled onto overflow pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_inline_bytes_leave_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let v = Vault::open(config(&data)).await.unwrap();
    let small_marker = b"SMALL-SECRET-5e0c77a1";
    let big_marker = b"BIG-SECRET-a83f19d6";
    let small = put(&v, &[&b"{\"m\":\""[..], small_marker, b"\"}"].concat(), &[]).await;
    let big_body = [&b"{\"m\":\""[..], &big_marker.repeat(1000), b"\"}"].concat();
    let big = put(&v, &big_body, &[]).await;
    // An unrelated erasure checkpoints and truncates the log.
    let other = put(&v, b"{\"other\":1}", &[]).await;
    v.erase("admin", &other.id, "make room").await.unwrap();
    let db = data.join("evault.db");
    for m in [&small_marker[..], &big_marker[..]] {
        assert!(
            contains(&std::fs::read(&db).unwrap(), m),
            "the marker must be in evault.db before the erasure"
        );
    }
    v.erase("admin", &small.id, "request").await.unwrap();
    v.erase("admin", &big.id, "request").await.unwrap();
    for m in [&small_marker[..], &big_marker[..]] {
        assert_eq!(holding(&data, m), Vec::<PathBuf>::new());
    }
    v.shutdown().await.unwrap();
    for m in [&small_marker[..], &big_marker[..]] {
        assert_eq!(holding(&data, m), Vec::<PathBuf>::new());
    }
}

on_every_store! {
    /// At most 1,000 active holds and 1,000 retention policies: one more is a
    /// conflict naming the cap; a released hold frees its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn holds_and_policies_are_capped() {
        use evault_vault::erasure::{MAX_ACTIVE_HOLDS, MAX_POLICIES};
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(config(dir.path())).await.unwrap();
        let mut first = None;
        for i in 0..MAX_ACTIVE_HOLDS {
            let sel = Selector {
                labels: labels(&[("case", &i.to_string())]),
                content_type: None,
            };
            let h = v.create_hold("legal", sel, "case").await.unwrap();
            first.get_or_insert(h.id);
        }
        match v
            .create_hold("legal", Selector::default(), "one more")
            .await
        {
            Err(VaultError::Conflict(why)) => assert!(why.contains("1000"), "{why}"),
            other => panic!("{other:?}"),
        }
        v.release_hold("legal", &first.unwrap()).await.unwrap();
        v.create_hold("legal", Selector::default(), "now it fits")
            .await
            .unwrap();
        for i in 0..MAX_POLICIES {
            v.create_retention(
                "admin",
                &format!("p{i}"),
                Selector::default(),
                Duration::from_secs(86_400),
            )
            .await
            .unwrap();
        }
        assert!(matches!(
            v.create_retention(
                "admin",
                "more",
                Selector::default(),
                Duration::from_secs(86_400)
            )
            .await,
            Err(VaultError::Conflict(_))
        ));
        // An overflowing keep_for says so.
        match v
            .create_retention("admin", "x", Selector::default(), Duration::MAX)
            .await
        {
            Err(VaultError::Invalid(why)) => assert!(why.contains("at most"), "{why}"),
            other => panic!("{other:?}"),
        }
        v.shutdown().await.unwrap();
    }
}
