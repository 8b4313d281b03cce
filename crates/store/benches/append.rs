//! Durable append throughput of `SqliteStore`, against a raw-SQLite baseline
//! writing the same rows into the same tables in the same run.
//!
//! Workload: 1 KiB inline payloads, two labels each, ~300-byte JSON leaf
//! data, 32-byte sha256 and dedup keys, UUIDv7-shaped ids, and the tiles a
//! sequencer writes per batch (built beforehand with the sequencer's
//! `TileBuilder`; hashing is the sequencer's cost, not the store's). Every
//! batch is one durable transaction (WAL, `synchronous=FULL`) into a fresh
//! database.
//!
//! The baseline opens the same file layout (schema created by
//! `SqliteStore::open`, then closed), applies the same PRAGMAs and inserts
//! the same records with prepared statements, one transaction
//! per batch, with no checks, no tree size and no tiles. (It writes the
//! same `records.labels` JSON column, so the rows are byte-identical.)
//!
//! Since schema 9 the commit writes no label or digest index rows; the
//! vault's index follower writes them behind the log. "evault+index" is
//! the store run with that follower's work done serially after the commits
//! that gave it (`index_evidence`, 16,384 records per call, as the
//! follower): the store's whole write work, as if the follower had no core
//! of its own. The raw baseline writes what the commit writes (the records
//! and their commit-path indexes, no label rows).
//!
//! "evault‖index" is the same work as the vault does it since schema 11
//! (the follower's tables in their own database file): the follower on a
//! thread of its own beside the appends, a batch whenever 16,384 records
//! wait or 100 ms have passed, and the appends held back while it lags by
//! more than 65,536 (the vault's `indexer.rs` constants). Timed until both
//! are done.
//!
//! A third run, "evault+audit", appends the same records each with one
//! audit event (~500-byte canonical JSON leaf, its own tiles) in the same
//! transaction, as the vault's sequencer does with the audit trail on; the
//! table shows its throughput beside the store's without events.
//!
//! Environment: `EVAULT_BENCH_RECORDS` (default 200000),
//! `EVAULT_BENCH_BATCHES` (default `1000,10000`), `EVAULT_BENCH_ROUNDS`
//! (default 2; the best round is reported), `EVAULT_BENCH_DIR` (where the
//! temporary databases go; default the system temp dir),
//! `EVAULT_BENCH_ONLY=evault`, `=index`, `=beside` or `=audit` (that store run
//! alone, for profiling), `=disk` (the disk's bound alone), `=segment` (the
//! floor of a segment-file layout alone: see `run_segment`),
//! `EVAULT_BENCH_SEGMENT_EDGE=0` (the segment run without its three edge
//! indexes), `EVAULT_BENCH_INDEX_BATCH` (default 16384: records per `index_evidence`
//! call in the "evault+index" run),
//! `EVAULT_BENCH_SOFT_HEAP_LIMIT` (bytes, 0 for none: replaces the
//! store's SQLite soft heap limit, to measure what it costs),
//! `EVAULT_BENCH_PRELOAD` (default 0: records appended, untimed, before
//! each run, to measure a store that already holds data; B-tree indexes on
//! random keys, like the dedup key, get slower as they grow).
//!
//! The physical bound beside them, "disk": the same rows' bytes (payload,
//! leaf data, id, both hashes, labels) appended to one file with an
//! `fdatasync` per batch, in the same directory, in the same run: what
//! writing every record once, durably per batch, costs on this disk, with
//! no index, no page format and no second copy (SQLite's WAL writes each
//! page twice: once to the WAL, once to the database file at checkpoint).
//! Its `rec/s` is the ceiling any log store on this machine can reach at
//! this batch size; the table shows evault as a share of it.
//!
//! "segment": the floor of the segment-file layout (issue #13's step 6):
//! payloads and leaf data appended once to a file and `fdatasync`ed, the
//! rest of each record (one row per record, its id index and the edge
//! indexes) and the tiles in one SQLite transaction. What any layout that
//! keeps one SQLite row per record can reach at best (see `run_segment`).
//!
//! Machine-readable lines start with `RESULT` for bench/store.sh.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_merkle::tiles::{TileBuilder, TileId};
use evault_merkle::{Hash, leaf_hash};
use evault_store::{
    AppendBatch, AuditBatch, AuditRow, EvidenceIndex, EvidenceRow, LogId, LogStore, Payload,
    SqliteStore,
};
use rusqlite::{Connection, params};

/// Payload bytes per record: `EVAULT_BENCH_PAYLOAD`, default 1024.
fn payload_size() -> usize {
    env_u64("EVAULT_BENCH_PAYLOAD", 1024) as usize
}
const T0: i64 = 1_760_000_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic bytes that do not compress.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        self.fill(&mut h);
        h
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Records `start..start + n`; `seed` makes keys and payloads distinct
/// between calls.
fn make_rows(start: u64, n: u64, seed: u64) -> Vec<EvidenceRow> {
    let payload_size = payload_size();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0xff51_afd7_ed55_8ccd));
    (start..start + n)
        .map(|i| {
            let ingested_at_ms = T0 + (i / 50) as i64;
            let id = common::uuid(ingested_at_ms as u64, rng.next());
            let mut payload = vec![0u8; payload_size];
            rng.fill(&mut payload);
            let sha256 = rng.hash();
            let dedup_key = rng.hash();
            let mut labels = BTreeMap::new();
            labels.insert("case".to_owned(), format!("case-{:05}", i % 5000));
            labels.insert("source".to_owned(), format!("scanner-{}", i % 7));
            let content_type = if i % 3 == 0 {
                "application/pdf"
            } else {
                "application/json"
            };
            // Canonical-JSON-shaped metadata, ~300 bytes.
            let leaf_data = format!(
                concat!(
                    "{{\"content_type\":\"{}\",\"id\":\"{}\",\"ingested_at_ms\":{},",
                    "\"ingested_by\":\"svc-ingest@example.com\",\"labels\":{{\"case\":\"{}\",",
                    "\"source\":\"{}\"}},\"sha256\":\"{}\",\"size\":{},\"v\":1}}"
                ),
                content_type,
                id,
                ingested_at_ms,
                labels["case"],
                labels["source"],
                hex(&sha256),
                payload_size
            )
            .into_bytes();
            EvidenceRow {
                leaf_index: i,
                id,
                content_type: content_type.to_owned(),
                sha256,
                size: payload_size as u64,
                labels,
                ingested_at_ms,
                ingested_by: "svc-ingest@example.com".to_owned(),
                idempotency_key: (i % 4 == 0).then(|| format!("req-{i:010}")),
                dedup_key,
                leaf_data,
                payload: Payload::Inline(payload),
                analytics: None,
            }
        })
        .collect()
}

/// The audit event of each record `start..start + n`, shaped like the
/// vault's: canonical JSON of the same members, similar sizes.
fn make_audit_rows(start: u64, n: u64) -> Vec<AuditRow> {
    (start..start + n)
        .map(|i| {
            let time_ms = T0 + (i / 50) as i64;
            let id = common::uuid(time_ms as u64, i | 1 << 47);
            // The events of the records' puts: the ingester's.
            let principal = "svc-ingest@example.com".to_owned();
            let leaf_data = format!(
                concat!(
                    "{{\"auth_method\":\"service-account\",\"client\":\"10.0.{}.{}:{}\",",
                    "\"id\":\"{}\",\"key_id\":\"key-{}\",\"operation\":\"evidence.put\",",
                    "\"outcome\":\"success\",\"params_digest\":\"{:064x}\",",
                    "\"principal\":\"{}\",\"protocol\":\"http\",",
                    "\"request_id\":\"{}\",\"resource\":\"/api/v1/evidence/{}\",",
                    "\"status\":201,\"time\":\"{}\",\"v\":\"evault/audit/v1\"}}"
                ),
                i % 7,
                i % 251,
                40000 + i % 20000,
                id,
                i % 4,
                u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834),
                principal,
                common::uuid(time_ms as u64, i | 1 << 46),
                common::uuid(time_ms as u64, i),
                time_ms,
            )
            .into_bytes();
            AuditRow {
                leaf_index: i,
                id,
                time_ms,
                principal,
                operation: "evidence.put".to_owned(),
                outcome: "success".to_owned(),
                leaf_data,
            }
        })
        .collect()
}

type Tiles = Vec<(TileId, Vec<u8>)>;

/// The tiles a sequencer writes with each batch of `batch` leaves, from
/// the tree state `tb`.
fn plan_tiles(mut tb: TileBuilder, leaf_data: &[&[u8]], batch: usize) -> Vec<Tiles> {
    leaf_data
        .chunks(batch)
        .map(|chunk| {
            let leaves: Vec<Hash> = chunk.iter().map(|l| leaf_hash(l)).collect();
            tb.append(&leaves)
        })
        .collect()
}

fn leaves_of(rows: &[EvidenceRow]) -> Vec<&[u8]> {
    rows.iter().map(|r| r.leaf_data.as_slice()).collect()
}

fn audit_leaves_of(events: &[AuditRow]) -> Vec<&[u8]> {
    events.iter().map(|e| e.leaf_data.as_slice()).collect()
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("EVAULT_BENCH_DIR") {
        Some(d) => {
            std::fs::create_dir_all(&d).ok();
            tempfile::tempdir_in(d).expect("temp dir")
        }
        None => tempfile::tempdir().expect("temp dir"),
    }
}

/// Records appended (untimed) before the timed run, to measure a store that
/// already holds data: `EVAULT_BENCH_PRELOAD` records in chunks of 50,000.
struct Preload {
    chunks: Vec<(u64, u64)>,
    tiles: Vec<Tiles>,
    /// Tree state after the preload, for planning the timed batches.
    builder: TileBuilder,
    /// The same for the audit log (one event per preloaded record), used
    /// by the evault+audit run.
    audit_tiles: Vec<Tiles>,
    audit_builder: TileBuilder,
}

const PRELOAD_CHUNK: u64 = 50_000;
const PRELOAD_SEED: u64 = 1;

impl Preload {
    fn new(count: u64) -> Self {
        let mut builder = TileBuilder::new();
        let mut audit_builder = TileBuilder::new();
        let mut chunks = Vec::new();
        let mut tiles = Vec::new();
        let mut audit_tiles = Vec::new();
        let mut start = 0;
        while start < count {
            let n = PRELOAD_CHUNK.min(count - start);
            let rows = make_rows(start, n, PRELOAD_SEED + start);
            let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.leaf_data)).collect();
            tiles.push(builder.append(&leaves));
            let events = make_audit_rows(start, n);
            let leaves: Vec<Hash> = events.iter().map(|e| leaf_hash(&e.leaf_data)).collect();
            audit_tiles.push(audit_builder.append(&leaves));
            chunks.push((start, n));
            start += n;
        }
        Preload {
            chunks,
            tiles,
            builder,
            audit_tiles,
            audit_builder,
        }
    }

    fn rows(&self) -> impl Iterator<Item = Vec<EvidenceRow>> + '_ {
        self.chunks
            .iter()
            .map(|&(start, n)| make_rows(start, n, PRELOAD_SEED + start))
    }
}

/// Bytes this process has passed to write(2)-family calls (Linux), to show
/// how much SQLite writes (WAL frames, checkpoints) per record.
fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One timed run: how long, and how many bytes were written meanwhile.
struct Run {
    took: Duration,
    written: Option<u64>,
}

/// The audit events of a run, one per record, and their tiles per batch.
struct AuditPlan<'a> {
    events: &'a [AuditRow],
    tiles: &'a [Tiles],
}

/// Records per `index_evidence` call: the vault's index follower's
/// largest batch by default; `EVAULT_BENCH_INDEX_BATCH` to try others.
fn index_batch() -> u64 {
    env_u64("EVAULT_BENCH_INDEX_BATCH", 16_384).max(1)
}

/// How a store run does the index follower's work.
#[derive(Clone, Copy, PartialEq)]
enum Index {
    /// Not at all (the commit path alone).
    No,
    /// Serially after the commits that gave it.
    After,
    /// On its own thread beside the appends, as the vault runs it.
    Beside,
}

/// The vault's follower pacing (`crates/vault/src/indexer.rs`).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
const FOLLOW_MAX_LAG: u64 = 65_536;

/// What the appends and the follower thread tell each other.
#[derive(Default)]
struct Follow {
    state: std::sync::Mutex<FollowState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct FollowState {
    size: u64,
    indexed: u64,
    done: bool,
}

impl Follow {
    fn lock(&self) -> std::sync::MutexGuard<'_, FollowState> {
        self.state.lock().expect("follow state")
    }

    /// The appends' side: publishes the new size, then waits while the
    /// index lags by more than the vault allows.
    fn appended(&self, size: u64) {
        let mut st = self.lock();
        st.size = size;
        self.changed.notify_all();
        while st.size - st.indexed > FOLLOW_MAX_LAG {
            st = self.changed.wait(st).expect("follow state");
        }
    }

    fn finish(&self) {
        self.lock().done = true;
        self.changed.notify_all();
    }

    /// The follower thread: a batch when `batch` records wait, or when
    /// any do and the interval has passed; until the appends are done and
    /// everything is indexed.
    fn run(&self, store: &SqliteStore, batch: u64) {
        let mut last = Instant::now();
        loop {
            let target = {
                let mut st = self.lock();
                loop {
                    let lag = st.size - st.indexed;
                    if lag >= batch || (lag > 0 && (st.done || last.elapsed() >= FOLLOW_INTERVAL)) {
                        break st.size;
                    }
                    if st.done && lag == 0 {
                        return;
                    }
                    let wait = FOLLOW_INTERVAL.saturating_sub(last.elapsed());
                    st = self
                        .changed
                        .wait_timeout(st, wait.max(Duration::from_millis(1)))
                        .expect("follow state")
                        .0;
                }
            };
            last = Instant::now();
            let reached = store.index_evidence(target, batch).expect("index");
            self.lock().indexed = reached;
            self.changed.notify_all();
        }
    }
}

fn run_store(
    pre: &Preload,
    rows: &[EvidenceRow],
    batch: usize,
    tiles: &[Tiles],
    audit: Option<AuditPlan<'_>>,
    index: Index,
) -> Run {
    let dir = bench_dir();
    let path = dir.path().join("evault.db");
    let store = SqliteStore::open(&path).expect("open");
    soft_heap_limit_override(&path);
    for ((chunk, t), at) in pre.rows().zip(&pre.tiles).zip(&pre.audit_tiles) {
        let start = chunk[0].leaf_index;
        let events = audit
            .as_ref()
            .map(|_| make_audit_rows(start, chunk.len() as u64));
        store
            .append(&AppendBatch {
                audit: events.as_deref().map(|events| AuditBatch {
                    old_size: start,
                    events,
                    tiles: at,
                }),
                ..AppendBatch::new(start, &chunk, t)
            })
            .expect("preload");
    }
    // The preload is indexed too: the follower keeps up between runs.
    let preloaded = store.tree_size(LogId::Evidence).expect("size");
    let index_batch = index_batch();
    while store.index_evidence(preloaded, index_batch).expect("index") < preloaded {}
    let w0 = written_bytes();
    let start = Instant::now();
    let follow = Follow::default();
    {
        let mut st = follow.lock();
        st.size = preloaded;
        st.indexed = preloaded;
    }
    std::thread::scope(|scope| {
        if index == Index::Beside {
            scope.spawn(|| follow.run(&store, index_batch));
        }
        for (i, (chunk, t)) in rows.chunks(batch).zip(tiles).enumerate() {
            let first = chunk[0].leaf_index;
            let audit_part = audit.as_ref().map(|a| AuditBatch {
                old_size: first,
                events: &a.events[i * batch..i * batch + chunk.len()],
                tiles: &a.tiles[i],
            });
            store
                .append(&AppendBatch {
                    audit: audit_part,
                    ..AppendBatch::new(first, chunk, t)
                })
                .expect("append");
            // The follower's work, serially after the commits that gave it (in
            // the vault it runs beside them, on the other core).
            let size = first + chunk.len() as u64;
            if index == Index::Beside {
                follow.appended(size);
            }
            while index == Index::After
                && size - store.indexed_through().expect("cursor") >= index_batch
            {
                store.index_evidence(size, index_batch).expect("index");
            }
        }
        follow.finish();
    });
    let end = rows.last().map_or(0, |r| r.leaf_index + 1);
    while index == Index::After && store.index_evidence(end, index_batch).expect("index") < end {}
    if index == Index::Beside {
        assert_eq!(store.indexed_through().expect("cursor"), end);
    }
    let took = start.elapsed();
    let written = written_bytes().zip(w0).map(|(a, b)| a - b);
    assert_eq!(
        store.tree_size(LogId::Evidence).expect("size"),
        rows.last().map_or(0, |r| r.leaf_index + 1)
    );
    Run { took, written }
}

fn raw_connection(path: &Path) -> Connection {
    // Same schema and file settings as the store...
    drop(SqliteStore::open(path).expect("open"));
    // ...and the same per-connection PRAGMAs.
    let conn = Connection::open(path).expect("raw open");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    conn.execute_batch(SqliteStore::WRITER_PRAGMAS)
        .expect("pragmas");
    soft_heap_limit_override(path);
    conn
}

/// `EVAULT_BENCH_SOFT_HEAP_LIMIT` (bytes; 0 = none): replaces the store's
/// SQLite soft heap limit, which is process-wide (set through any
/// connection, the last setting holds), to measure what it costs.
fn soft_heap_limit_override(path: &Path) {
    if let Ok(limit) = std::env::var("EVAULT_BENCH_SOFT_HEAP_LIMIT") {
        let limit: i64 = limit
            .trim()
            .parse()
            .expect("EVAULT_BENCH_SOFT_HEAP_LIMIT: bytes");
        Connection::open(path)
            .expect("open")
            .execute_batch(&format!("PRAGMA soft_heap_limit = {limit}"))
            .expect("soft_heap_limit");
    }
}

/// Inserts `chunk` in one transaction, as plainly as SQLite allows.
fn raw_insert(conn: &mut Connection, chunk: &[EvidenceRow]) {
    let tx = conn.transaction().expect("begin");
    {
        let mut rec = tx
            .prepare_cached(
                "INSERT INTO records (leaf_index, id, content_type, sha256, size, \
                 ingested_at_ms, ingested_by, idempotency_key, dedup_key, leaf_data, payload, \
                 labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .expect("prepare");
        let mut labels = String::with_capacity(256);
        for r in chunk {
            labels_json(&r.labels, &mut labels);
            let payload = match &r.payload {
                Payload::Inline(p) => Some(p.as_slice()),
                Payload::External | Payload::Erased { .. } => None,
            };
            rec.execute(params![
                r.leaf_index as i64,
                r.id,
                r.content_type,
                r.sha256.as_slice(),
                r.size as i64,
                r.ingested_at_ms,
                r.ingested_by,
                r.idempotency_key,
                r.dedup_key.as_slice(),
                r.leaf_data,
                payload,
                labels,
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// The bytes of a record as the store's row holds them: payload, leaf data,
/// id, sha256 and dedup key, labels.
fn row_bytes(r: &EvidenceRow, out: &mut Vec<u8>) {
    if let Payload::Inline(p) = &r.payload {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&r.leaf_data);
    out.extend_from_slice(r.id.as_bytes());
    out.extend_from_slice(&r.sha256);
    out.extend_from_slice(&r.dedup_key);
    for (k, v) in &r.labels {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
}

/// The disk's bound: each batch's row bytes appended to one file, then
/// `fdatasync`. A sequential append costs the same however long the file
/// is, so there is no preload.
fn run_disk(rows: &[EvidenceRow], batch: usize) -> Run {
    use std::io::Write;
    let dir = bench_dir();
    let mut file = std::fs::File::create(dir.path().join("disk.log")).expect("create");
    let buffers: Vec<Vec<u8>> = rows
        .chunks(batch)
        .map(|chunk| {
            let mut b = Vec::new();
            for r in chunk {
                row_bytes(r, &mut b);
            }
            b
        })
        .collect();
    let w0 = written_bytes();
    let start = Instant::now();
    for b in &buffers {
        file.write_all(b).expect("write");
        file.sync_data().expect("fdatasync");
    }
    let took = start.elapsed();
    let written = written_bytes().zip(w0).map(|(a, b)| a - b);
    Run { took, written }
}

/// The floor of step 6's layout (entries and payloads in an append-only
/// segment file, SQLite for the rest): each batch's payloads and leaf data
/// appended to one file and `fdatasync`ed, then one SQLite transaction
/// (the store's file, PRAGMAs and commit) with the record's other columns
/// and its segment offsets in a `records`-shaped table without the two
/// blobs (its UNIQUE id and the three edge indexes), and the batch's tiles
/// as plain inserts (a full tile with 8,128 bytes standing for its inner
/// levels). No checks, no tree size, no follower: what any layout
/// that keeps one SQLite row per record costs here at best.
fn run_segment(pre: &Preload, rows: &[EvidenceRow], batch: usize, tiles: &[Tiles]) -> Run {
    use std::io::Write;
    let dir = bench_dir();
    let mut conn = raw_connection(&dir.path().join("segment.db"));
    conn.execute_batch(
        "CREATE TABLE seg_records (
             leaf_index INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
             content_type TEXT NOT NULL, sha256 BLOB NOT NULL, size INTEGER NOT NULL,
             ingested_at_ms INTEGER NOT NULL, ingested_by TEXT NOT NULL,
             idempotency_key TEXT, dedup_key BLOB NOT NULL, labels TEXT NOT NULL,
             seg_offset INTEGER NOT NULL, leaf_len INTEGER NOT NULL,
             payload_len INTEGER NOT NULL) STRICT;",
    )
    .expect("segment schema");
    // EVAULT_BENCH_SEGMENT_EDGE=0: without the three edge indexes (as if
    // the follower wrote them too), to see what they cost.
    if env_u64("EVAULT_BENCH_SEGMENT_EDGE", 1) != 0 {
        conn.execute_batch(
            "CREATE INDEX seg_content_type ON seg_records (content_type);
             CREATE INDEX seg_ingested_at ON seg_records (ingested_at_ms);
             CREATE INDEX seg_ingested_by ON seg_records (ingested_by);",
        )
        .expect("segment indexes");
    }
    let mut file = std::fs::File::create(dir.path().join("segment.log")).expect("create");
    let mut offset = 0u64;
    let mut buf = Vec::new();
    let mut labels = String::with_capacity(256);
    let mut write_batch = |conn: &mut Connection, chunk: &[EvidenceRow], t: &Tiles| {
        buf.clear();
        let first = offset;
        for r in chunk {
            if let Payload::Inline(p) = &r.payload {
                buf.extend_from_slice(p);
            }
            buf.extend_from_slice(&r.leaf_data);
        }
        file.write_all(&buf).expect("write");
        file.sync_data().expect("fdatasync");
        offset += buf.len() as u64;
        let tx = conn.transaction().expect("begin");
        {
            let mut rec = tx
                .prepare_cached(
                    "INSERT INTO seg_records (leaf_index, id, content_type, sha256, size, \
                     ingested_at_ms, ingested_by, idempotency_key, dedup_key, labels, \
                     seg_offset, leaf_len, payload_len) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .expect("prepare");
            let mut at = first;
            for r in chunk {
                labels_json(&r.labels, &mut labels);
                let payload_len = match &r.payload {
                    Payload::Inline(p) => p.len(),
                    Payload::External | Payload::Erased { .. } => 0,
                };
                rec.execute(params![
                    r.leaf_index as i64,
                    r.id,
                    r.content_type,
                    r.sha256.as_slice(),
                    r.size as i64,
                    r.ingested_at_ms,
                    r.ingested_by,
                    r.idempotency_key,
                    r.dedup_key.as_slice(),
                    labels,
                    at as i64,
                    r.leaf_data.len() as i64,
                    payload_len as i64,
                ])
                .expect("insert");
                at += (payload_len + r.leaf_data.len()) as u64;
            }
            let mut tile = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO tiles (id, level, idx, data, inner) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .expect("prepare");
            // A full tile carries its inner levels' bytes (the store
            // hashes them; here they are zeros of the same size).
            let inner = vec![0u8; 8128];
            for (id, data) in t {
                let key = (i64::from(id.level) << 56) | id.index as i64;
                let inner = (data.len() == 8192).then_some(inner.as_slice());
                tile.execute(params![key, id.level, id.index as i64, data, inner])
                    .expect("tile");
            }
        }
        tx.commit().expect("commit");
    };
    for (chunk, t) in pre.rows().zip(&pre.tiles) {
        write_batch(&mut conn, &chunk, t);
    }
    let w0 = written_bytes();
    let start = Instant::now();
    for (chunk, t) in rows.chunks(batch).zip(tiles) {
        write_batch(&mut conn, chunk, t);
    }
    let took = start.elapsed();
    let written = written_bytes().zip(w0).map(|(a, b)| a - b);
    Run { took, written }
}

fn run_raw(pre: &Preload, rows: &[EvidenceRow], batch: usize) -> Run {
    let dir = bench_dir();
    let path: PathBuf = dir.path().join("raw.db");
    let mut conn = raw_connection(&path);
    for chunk in pre.rows() {
        raw_insert(&mut conn, &chunk);
    }
    let w0 = written_bytes();
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        raw_insert(&mut conn, chunk);
    }
    let took = start.elapsed();
    let written = written_bytes().zip(w0).map(|(a, b)| a - b);
    Run { took, written }
}

/// The `records.labels` JSON object. The benchmark's labels need no
/// escaping, so plain formatting gives the store's bytes (checked by
/// `check_same_rows`).
fn labels_json(labels: &BTreeMap<String, String>, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(out, "{sep}\"{k}\":\"{v}\"");
    }
    out.push('}');
}

/// Checks that the baseline writes byte-identical rows: appends a few
/// records through the store and compares what the raw path would write.
fn check_same_rows() {
    let dir = bench_dir();
    let path = dir.path().join("check.db");
    let store = SqliteStore::open(&path).expect("open");
    let few = &make_rows(0, 10, 0);
    let tiles = plan_tiles(TileBuilder::new(), &leaves_of(few), few.len());
    store
        .append(&AppendBatch::new(0, few, &tiles[0]))
        .expect("append");
    drop(store);
    let conn = Connection::open(&path).expect("open");
    let mut buf = String::new();
    for r in few {
        let stored: String = conn
            .query_row(
                "SELECT labels FROM records WHERE leaf_index = ?1",
                [r.leaf_index as i64],
                |row| row.get(0),
            )
            .expect("row");
        labels_json(&r.labels, &mut buf);
        assert_eq!(stored, buf, "baseline labels differ from the store's");
    }
}

fn rate(n: usize, run: &Run) -> f64 {
    n as f64 / run.took.as_secs_f64()
}

fn mib(run: &Run) -> String {
    run.written
        .map_or_else(|| "?".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
}

fn main() {
    let n = env_u64("EVAULT_BENCH_RECORDS", 200_000) as usize;
    let rounds = env_u64("EVAULT_BENCH_ROUNDS", 2).max(1);
    let batches: Vec<usize> = std::env::var("EVAULT_BENCH_BATCHES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&b| b > 0)
        .collect();

    // For profiling: EVAULT_BENCH_ONLY=evault runs the store alone.
    let only = std::env::var("EVAULT_BENCH_ONLY").ok();
    let preload = env_u64("EVAULT_BENCH_PRELOAD", 0);
    let t = Instant::now();
    let pre = Preload::new(preload);
    let rows = make_rows(preload, n as u64, 0);
    let events = make_audit_rows(preload, n as u64);
    let avg_leaf = rows.iter().map(|r| r.leaf_data.len()).sum::<usize>() / n.max(1);
    let row_bytes: usize = rows
        .iter()
        .map(|r| {
            r.leaf_data.len()
                + payload_size()
                + r.id.len()
                + 64
                + r.labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    eprintln!(
        "row data: {:.0} MiB (payload, leaf data, id, hashes, labels)",
        row_bytes as f64 / 1048576.0
    );
    eprintln!(
        "generated {n} records ({} B payload, {avg_leaf} B leaf data, 2 labels) in {:.1}s",
        payload_size(),
        t.elapsed().as_secs_f64()
    );

    if preload > 0 {
        eprintln!("each run first appends {preload} records (untimed)");
    }
    check_same_rows();

    let mut table = Vec::new();
    for &batch in &batches {
        let tiles = plan_tiles(pre.builder.clone(), &leaves_of(&rows), batch);
        let audit_tiles = plan_tiles(pre.audit_builder.clone(), &audit_leaves_of(&events), batch);
        let tile_writes: usize = tiles.iter().map(Vec::len).sum();
        let with_audit = || {
            Some(AuditPlan {
                events: &events,
                tiles: &audit_tiles,
            })
        };
        let (mut best_store, mut best_index, mut best_beside, mut best_audit) =
            (0f64, 0f64, 0f64, 0f64);
        let (mut best_raw, mut best_disk, mut best_segment) = (0f64, 0f64, 0f64);
        for round in 1..=rounds {
            // The disk's bound alone (a baseline beside a run of one store
            // kind at another preload, in the same session).
            if only.as_deref() == Some("disk") {
                let d = run_disk(&rows, batch);
                eprintln!(
                    "batch {batch:>6} round {round}: disk {:>8.0} rec/s ({} MiB written)",
                    rate(n, &d),
                    mib(&d)
                );
                continue;
            }
            // The segment layout's floor (step 6), alone.
            if only.as_deref() == Some("segment") {
                let g = run_segment(&pre, &rows, batch, &tiles);
                eprintln!(
                    "batch {batch:>6} round {round}: segment {:>8.0} rec/s ({} MiB written)",
                    rate(n, &g),
                    mib(&g)
                );
                continue;
            }
            // For profiling: one store run alone.
            if let Some(which @ ("evault" | "audit" | "index" | "beside")) = only.as_deref() {
                let audit = if which == "audit" { with_audit() } else { None };
                let index = match which {
                    "index" => Index::After,
                    "beside" => Index::Beside,
                    _ => Index::No,
                };
                let s = run_store(&pre, &rows, batch, &tiles, audit, index);
                eprintln!(
                    "batch {batch:>6} round {round}: {which} {:>8.0} rec/s ({} MiB written)",
                    rate(n, &s),
                    mib(&s)
                );
                continue;
            }
            // Rotate the order so no run always follows the same one (its
            // page cache may still be flushing the other's files).
            let mut runs: [(&str, Option<Run>); 7] = [
                ("raw", None),
                ("evault", None),
                ("index", None),
                ("beside", None),
                ("audit", None),
                ("disk", None),
                ("segment", None),
            ];
            runs.rotate_left((round as usize - 1) % 7);
            for (which, run) in &mut runs {
                *run = Some(match *which {
                    "raw" => run_raw(&pre, &rows, batch),
                    "evault" => run_store(&pre, &rows, batch, &tiles, None, Index::No),
                    "index" => run_store(&pre, &rows, batch, &tiles, None, Index::After),
                    "beside" => run_store(&pre, &rows, batch, &tiles, None, Index::Beside),
                    "disk" => run_disk(&rows, batch),
                    "segment" => run_segment(&pre, &rows, batch, &tiles),
                    _ => run_store(&pre, &rows, batch, &tiles, with_audit(), Index::No),
                });
            }
            let get = |name: &str| {
                runs.iter()
                    .find(|(w, _)| *w == name)
                    .and_then(|(_, r)| r.as_ref())
                    .expect("every run ran")
            };
            let (s, x, b, a, r, d, g) = (
                get("evault"),
                get("index"),
                get("beside"),
                get("audit"),
                get("raw"),
                get("disk"),
                get("segment"),
            );
            eprintln!(
                "batch {batch:>6} round {round}: evault {:>8.0} rec/s ({} MiB written, {tile_writes} tile upserts), evault+index {:>8.0} rec/s ({} MiB written), evault‖index {:>8.0} rec/s ({} MiB written), evault+audit {:>8.0} rec/s ({} MiB written), raw {:>8.0} rec/s ({} MiB written), disk {:>8.0} rec/s ({} MiB written), segment {:>8.0} rec/s ({} MiB written)",
                rate(n, s),
                mib(s),
                rate(n, x),
                mib(x),
                rate(n, b),
                mib(b),
                rate(n, a),
                mib(a),
                rate(n, r),
                mib(r),
                rate(n, d),
                mib(d),
                rate(n, g),
                mib(g),
            );
            best_store = best_store.max(rate(n, s));
            best_index = best_index.max(rate(n, x));
            best_beside = best_beside.max(rate(n, b));
            best_audit = best_audit.max(rate(n, a));
            best_raw = best_raw.max(rate(n, r));
            best_disk = best_disk.max(rate(n, d));
            best_segment = best_segment.max(rate(n, g));
        }
        println!("RESULT evault batch={batch} records={n} rps={best_store:.0}");
        println!("RESULT evault_index batch={batch} records={n} rps={best_index:.0}");
        println!("RESULT evault_beside batch={batch} records={n} rps={best_beside:.0}");
        println!("RESULT evault_audit batch={batch} records={n} rps={best_audit:.0}");
        println!("RESULT raw batch={batch} records={n} rps={best_raw:.0}");
        println!("RESULT disk batch={batch} records={n} rps={best_disk:.0}");
        println!("RESULT segment batch={batch} records={n} rps={best_segment:.0}");
        table.push((
            batch,
            [
                best_store,
                best_index,
                best_beside,
                best_audit,
                best_raw,
                best_disk,
                best_segment,
            ],
        ));
    }

    println!();
    println!(
        "durable append, {n} records of {} B into a {}, best of {rounds} round(s)",
        payload_size(),
        if preload > 0 {
            format!("store already holding {preload} records")
        } else {
            "fresh store".to_owned()
        }
    );
    println!(
        "| {:>8} | {:>16} | {:>18} | {:>18} | {:>18} | {:>16} | {:>14} | {:>14} | {:>10} | {:>12} | {:>11} | {:>14} |",
        "batch",
        "evault rec/s",
        "evault+index rec/s",
        "evault‖index rec/s",
        "evault+audit rec/s",
        "raw SQLite rec/s",
        "disk rec/s",
        "segment rec/s",
        "evault/raw",
        "audit/evault",
        "evault/disk",
        "evault/segment"
    );
    println!(
        "|{:-<10}|{:-<18}|{:-<20}|{:-<20}|{:-<20}|{:-<18}|{:-<16}|{:-<16}|{:-<12}|{:-<14}|{:-<13}|{:-<16}|",
        "", "", "", "", "", "", "", "", "", "", "", ""
    );
    for (batch, [s, x, b, a, r, d, g]) in table {
        println!(
            "| {batch:>8} | {s:>16.0} | {x:>18.0} | {b:>18.0} | {a:>18.0} | {r:>16.0} | {d:>14.0} | {g:>14.0} | {:>9.1}% | {:>11.1}% | {:>10.1}% | {:>13.1}% |",
            100.0 * s / r,
            100.0 * a / s,
            100.0 * s / d,
            100.0 * s / g
        );
    }
}
