//! Evidence bundles at scale: a vault of 1,000,000 records
//! (`EVAULT_BENCH_RECORDS` to change) exported as one `.evb` (with the
//! payloads when `EVAULT_BENCH_PAYLOADS=1`, up to some 370,000 records),
//! then read and verified offline by the verify crate alone.
//! Each rate is printed beside raw SHA-256 over the same bytes (the
//! bundle's decompressed archive), measured in the same run; the machine
//! is shared, so compare the ratios.
//!
//! `cargo bench -p evault-vault --bench bundle`

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use evault_note::{Ed25519Verifier, Verifiers};
use evault_vault::{BundleSelection, Reader, StreamRecord, Vault, VaultConfig};
use evault_verify::evb::{self, NoPayloadSink, ReadLimits};
use sha2::{Digest, Sha256};

/// Payload bytes per record: a small JSON report, as CI steps send.
const PAYLOAD: usize = 256;

fn config(dir: &Path) -> VaultConfig {
    let mut c = VaultConfig::new(dir);
    c.state_dir = Some(dir.join("state"));
    c.origin = Some("bench.example/vault".into());
    c.checkpoint_interval = Duration::from_millis(200);
    c
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("{{\"step\":\"test\",\"run\":{i},\"pad\":\"").into_bytes();
    p.resize(PAYLOAD - 2, b'x');
    p.extend_from_slice(b"\"}");
    p
}

async fn fill(v: &Vault, records: u64) {
    const UNIT: u64 = 4096;
    let mut pending = VecDeque::new();
    let mut next = 0u64;
    while next < records {
        let n = UNIT.min(records - next);
        let unit: Vec<StreamRecord> = (next..next + n)
            .map(|i| StreamRecord {
                content_type: "application/json".into(),
                labels: BTreeMap::from([("run".to_string(), (i % 100).to_string())]),
                payload: payload(i),
                idempotency_key: None,
            })
            .collect();
        pending.push_back(v.submit("sa:bench", unit).await.expect("submit"));
        // A few units in flight keep the sequencer's batches full.
        if pending.len() >= 4 {
            let out = pending
                .pop_front()
                .unwrap()
                .outcomes()
                .await
                .expect("outcomes");
            assert!(out.iter().all(|o| o.is_ok()));
        }
        next += n;
    }
    for s in pending {
        assert!(
            s.outcomes()
                .await
                .expect("outcomes")
                .iter()
                .all(|o| o.is_ok())
        );
    }
}

/// Raw SHA-256 over `bytes` in 64 KiB pieces, as the reader hashes members.
fn raw_sha256(bytes: &[u8]) -> Duration {
    let started = Instant::now();
    let mut h = Sha256::new();
    for piece in bytes.chunks(64 << 10) {
        h.update(piece);
    }
    std::hint::black_box(h.finalize());
    started.elapsed()
}

fn main() {
    let records: u64 = std::env::var("EVAULT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("all.evb");

    let (vault, load) = rt.block_on(async {
        let v = Vault::open(config(dir.path())).await.expect("open");
        let started = Instant::now();
        fill(&v, records).await;
        v.evidence_log()
            .wait_for_checkpoint(records, Duration::from_secs(600))
            .await
            .expect("checkpoint");
        (v, started.elapsed())
    });
    eprintln!(
        "loaded {records} records of {PAYLOAD} B in {:.1} s",
        load.as_secs_f64()
    );
    let key =
        Ed25519Verifier::from_verifier_key(&vault.evidence_log().verifier_key()).expect("key");
    let verifiers = Verifiers::new().with(key).expect("verifiers");

    // Export: every record, as an auditor's task would. Payloads only on
    // request (EVAULT_BENCH_PAYLOADS=1): the manifest lists each payload,
    // and a reader accepts at most 64 MiB of manifest (some 370,000).
    let with_payloads = std::env::var("EVAULT_BENCH_PAYLOADS").is_ok_and(|v| v == "1");
    let selection = BundleSelection {
        payloads: with_payloads,
        ..BundleSelection::default()
    };
    let started = Instant::now();
    let summary = vault
        .export_bundle(
            &Reader::all("auditor"),
            &selection,
            &bundle,
            &|_, _| {},
            &|| false,
        )
        .expect("export");
    let export = started.elapsed();
    assert_eq!(summary.records, records);
    rt.block_on(vault.shutdown()).expect("shutdown");
    drop(vault);

    // Offline: read (decompress, bound, hash every member) and verify.
    let started = Instant::now();
    let file = std::fs::File::open(&bundle).expect("bundle");
    let read = evb::read_bundle(
        std::io::BufReader::new(file),
        &ReadLimits::default(),
        &mut NoPayloadSink,
    )
    .expect("read");
    let report = evb::verify_bundle(&read, &verifiers, None, None);
    let verify = started.elapsed();
    assert!(report.verified, "{:?}", report.failures.first());
    assert_eq!(report.records, records);

    // The baselines, over the same bytes: the archive as decompressed.
    let compressed = std::fs::read(&bundle).expect("bundle");
    let started = Instant::now();
    let mut tar = Vec::new();
    zstd::stream::read::Decoder::new(&compressed[..])
        .expect("zstd")
        .read_to_end(&mut tar)
        .expect("zstd");
    let unzstd = started.elapsed();
    let raw = raw_sha256(&tar);

    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!(
        "bundle of {records} records{}: {} bytes ({} decompressed, {:.0} B/record)",
        if with_payloads { " with payloads" } else { "" },
        compressed.len(),
        tar.len(),
        tar.len() as f64 / records as f64
    );
    println!(
        "  export (vault -> .evb)       {:>8.2} s  {:>10.0} records/s  {:>6.1}x raw SHA-256",
        export.as_secs_f64(),
        rate(export),
        export.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  offline read + verify        {:>8.2} s  {:>10.0} records/s  {:>6.1}x raw SHA-256",
        verify.as_secs_f64(),
        rate(verify),
        verify.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  baseline: zstd decompress    {:>8.2} s  {:>10.0} records/s",
        unzstd.as_secs_f64(),
        rate(unzstd)
    );
    println!(
        "  baseline: raw SHA-256        {:>8.2} s  {:>10.0} records/s  (same bytes, same run)",
        raw.as_secs_f64(),
        rate(raw)
    );
}
