//! PostgreSQL append throughput (issue 14, step 6): `PgStore::append` of
//! records with 1 KiB inline payloads in group commits, beside the same
//! rows COPYed (binary, one transaction per batch, durable commits) into
//! tables of the same columns without any index or trigger: the most this
//! server takes through COPY, measured in the same run.
//!
//! `cargo bench -p evault-store --bench pg_append` against the server of
//! `EVAULT_TEST_POSTGRES` (default: the local one). Each run gets its own
//! database, dropped after. `PG_BENCH_RECORDS` (default 100000) records per
//! run; batches of 1,000 and 10,000; the best of `PG_BENCH_RUNS` (default 2).

use std::time::{Duration, Instant};

use evault_merkle::leaf_hash;
use evault_merkle::tiles::TileBuilder;
use evault_store::postgres::{PgStore, migrate};
use evault_store::testing::postgres::TestDb;
use evault_store::{AppendBatch, EvidenceRow, LogStore, Payload};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` records with 1 KiB payloads that differ per record.
fn make_rows(n: u64) -> Vec<EvidenceRow> {
    (0..n)
        .map(|i| {
            let mut r = evault_store::testing::row(i);
            let mut payload = vec![0u8; 1024];
            payload[..8].copy_from_slice(&i.to_be_bytes());
            r.size = payload.len() as u64;
            r.sha256 = leaf_hash(&payload);
            r.dedup_key = leaf_hash(&r.sha256);
            r.payload = Payload::Inline(payload);
            r
        })
        .collect()
}

/// Appends `rows` through the store in batches of `batch`; the time of
/// the appends alone (tiles are planned first, as the sequencer does
/// before it commits).
fn run_store(rows: &[EvidenceRow], batch: usize) -> Duration {
    let db = TestDb::create("pg_append").expect("a PostgreSQL server (EVAULT_TEST_POSTGRES)");
    migrate(db.url()).expect("migrate");
    let store = PgStore::open(db.url()).expect("open");
    evault_store::testing::postgres::take_lease(&db, &store);
    let mut tb = TileBuilder::new();
    let mut plans = Vec::new();
    for chunk in rows.chunks(batch) {
        let leaves: Vec<_> = chunk.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
        let old = tb.size();
        plans.push((old, tb.append(&leaves)));
    }
    let start = Instant::now();
    for (chunk, (old, tiles)) in rows.chunks(batch).zip(&plans) {
        store
            .append(&AppendBatch::new(*old, chunk, tiles))
            .expect("append");
    }
    start.elapsed()
}

const RAW_SCHEMA: &str = "
CREATE TABLE raw_entries (
    leaf_index bigint, id text, content_type text, sha256 bytea, size bigint,
    ingested_at_ms bigint, ingested_by text, idempotency_key text, dedup_key bytea,
    leaf_data bytea, labels jsonb, external boolean);
CREATE TABLE raw_payloads (leaf_index bigint, data bytea);";

/// The same rows COPYed into unindexed tables, one transaction per batch.
fn run_raw(rows: &[EvidenceRow], batch: usize) -> Duration {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{Json, ToSql, Type};
    let db = TestDb::create("pg_append_raw").expect("a PostgreSQL server");
    db.execute(RAW_SCHEMA).expect("raw schema");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut client, conn) = db
            .url()
            .parse::<tokio_postgres::Config>()
            .expect("url")
            .options("-c synchronous_commit=on")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let entry_types = [
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::JSONB,
            Type::BOOL,
        ];
        let start = Instant::now();
        for chunk in rows.chunks(batch) {
            let tx = client.transaction().await.expect("begin");
            let sink = tx
                .copy_in("COPY raw_entries FROM STDIN (FORMAT binary)")
                .await
                .expect("copy");
            let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &entry_types));
            for r in chunk {
                let (index, size) = (r.leaf_index as i64, r.size as i64);
                let (sha, dedup): (&[u8], &[u8]) = (&r.sha256, &r.dedup_key);
                let labels = Json(&r.labels);
                let external = false;
                let row: [&(dyn ToSql + Sync); 12] = [
                    &index,
                    &r.id,
                    &r.content_type,
                    &sha,
                    &size,
                    &r.ingested_at_ms,
                    &r.ingested_by,
                    &r.idempotency_key,
                    &dedup,
                    &r.leaf_data,
                    &labels,
                    &external,
                ];
                w.as_mut().write(&row).await.expect("row");
            }
            w.finish().await.expect("finish");
            let sink = tx
                .copy_in("COPY raw_payloads FROM STDIN (FORMAT binary)")
                .await
                .expect("copy");
            let mut w = std::pin::pin!(BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA]));
            for r in chunk {
                let Payload::Inline(data) = &r.payload else {
                    continue;
                };
                w.as_mut()
                    .write(&[&(r.leaf_index as i64), data])
                    .await
                    .expect("row");
            }
            w.finish().await.expect("finish");
            tx.commit().await.expect("commit");
        }
        start.elapsed()
    })
}

fn rps(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    if TestDb::create("pg_append_probe").is_none() {
        eprintln!("pg_append: no PostgreSQL server; nothing measured");
        return;
    }
    let n = env_u64("PG_BENCH_RECORDS", 100_000);
    let runs = env_u64("PG_BENCH_RUNS", 2).max(1);
    let rows = make_rows(n);
    eprintln!(
        "pg_append: {n} records of 1 KiB, best of {runs} runs, each into a new database \
         (same run: raw binary COPY into unindexed tables)"
    );
    println!("| batch | evault append rec/s | raw COPY rec/s (same run) | ratio |");
    println!("|---|---|---|---|");
    for batch in [1_000usize, 10_000] {
        let mut best_store = 0f64;
        let mut best_raw = 0f64;
        for _ in 0..runs {
            best_raw = best_raw.max(rps(rows.len(), run_raw(&rows, batch)));
            best_store = best_store.max(rps(rows.len(), run_store(&rows, batch)));
        }
        println!(
            "| {batch} | {best_store:.0} | {best_raw:.0} | {:.2} |",
            best_store / best_raw
        );
        println!("RESULT pg_evault batch={batch} records={n} rps={best_store:.0}");
        println!("RESULT pg_raw_copy batch={batch} records={n} rps={best_raw:.0}");
    }
}
