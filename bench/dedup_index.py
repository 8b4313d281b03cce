"""What the dedup index costs SQLite: appends N rows shaped like evault's
records (256 B payload, 300 B leaf data, random 32-byte sha256 and dedup
key, time-ordered UUIDs) into the records table and its indexes, in
batches, WAL and synchronous=FULL as the store runs, once with
`dedup_key ... UNIQUE` ("all") and once without ("nodedup").

usage: python3 bench/dedup_index.py ROWS all|nodedup [BATCH]
Prints `RESULT variant=… batch=… rows=… rps=…`. Compare the two variants
from the same run; the absolute figures depend on the machine.
"""
import os, sqlite3, sys, time, uuid
N = int(sys.argv[1]); variant = sys.argv[2]; BATCH = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
path = f"/tmp/evault-dedup-bench-{variant}.db"
for suf in ("", "-wal", "-shm"):
    try: os.remove(path + suf)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=4096;")
dedup = "dedup_key BLOB NOT NULL UNIQUE," if variant == "all" else "dedup_key BLOB NOT NULL,"
db.executescript(f"""CREATE TABLE records (leaf_index INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, content_type TEXT NOT NULL,
 sha256 BLOB NOT NULL, size INTEGER NOT NULL, ingested_at_ms INTEGER NOT NULL, ingested_by TEXT NOT NULL, idempotency_key TEXT,
 {dedup} leaf_data BLOB NOT NULL, payload BLOB, labels TEXT NOT NULL) STRICT;
 CREATE INDEX records_content_type ON records (content_type); CREATE INDEX records_ingested_at ON records (ingested_at_ms);
 CREATE INDEX records_ingested_by ON records (ingested_by);""")
rows = []
t0 = int(time.time() * 1000)
for i in range(N):
    rows.append((i, str(uuid.UUID(int=(t0 + i // 50) << 80 | i)), "application/octet-stream", os.urandom(32), 256, t0 + i // 50,
                 "bench", None, os.urandom(32), os.urandom(300), os.urandom(256), "{}"))
start = time.time()
for b in range(0, N, BATCH):
    db.execute("BEGIN")
    db.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows[b:b + BATCH])
    db.execute("COMMIT")
secs = time.time() - start
print(f"RESULT variant={variant} batch={BATCH} rows={N} rps={N/secs:.0f}")
