"""Layout experiment for the index follower (issue 13): one random-keyed
index (32-byte keys, as `records_by_dedup`) built from sorted batches of
BATCH records, as the follower builds it, in two layouts, same run:

- `btree` (today, the baseline): one B-tree; each batch's sorted keys land
  on random leaf pages, so a batch rewrites most leaf pages once the tree
  outgrows the batch.
- `runs` (candidate): each batch is a sorted run appended at the right edge
  of one table keyed (first_leaf, level, key, leaf); whenever the newest
  FANOUT runs share a level they are merged into one run of the next level
  (leaf ranges stay contiguous, so runs in key order are in leaf order).
  A lookup probes each run.

Both files: 4 KiB pages, WAL, synchronous=NORMAL, 16 MiB cache, as
`evault-index.db`. Every REPORT records each layout prints its rate over
the last interval, the bytes it wrote per record (/proc/self/io
write_bytes, the kernel's count of bytes sent to the disk), the file's
bytes per record, the number of runs and a rate of random lookups of
present keys (each a Python loop over the runs: compare the ratio only).

usage: python3 bench/index_layout.py [RECORDS [BATCH [FANOUT [REPORT]]]]
       (defaults 4,000,000, 16,384, 8, 1,000,000; files under $TMPDIR)
"""
import hashlib, os, random, sqlite3, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 16_384
FANOUT = int(sys.argv[3]) if len(sys.argv) > 3 else 8
REPORT = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
PROBES = 2_000


def key(i):
    return hashlib.sha256(i.to_bytes(8, "little")).digest()


def written():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes"):
                return int(line.split()[1])


class Layout:
    def __init__(self, name, dir):
        self.name, self.path = name, os.path.join(dir, f"{name}.db")
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.executescript(
            "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            "PRAGMA cache_size=-16384; PRAGMA temp_store=FILE; PRAGMA journal_size_limit=16777216;"
        )
        self.seconds = 0.0
        self.bytes = 0

    def add(self, start, rows):
        w, t = written(), time.perf_counter()
        self.db.execute("BEGIN")
        self.insert(start, rows)
        self.db.execute("COMMIT")
        self.seconds += time.perf_counter() - t
        self.bytes += written() - w


class BTree(Layout):
    def __init__(self, dir):
        super().__init__("btree", dir)
        self.db.execute(
            "CREATE TABLE k (key BLOB NOT NULL, leaf INTEGER NOT NULL,"
            " PRIMARY KEY (key, leaf)) STRICT, WITHOUT ROWID"
        )

    def insert(self, start, rows):
        self.db.executemany("INSERT OR IGNORE INTO k VALUES (?, ?)", rows)

    def runs(self):
        return 1

    def lookup(self, k):
        row = self.db.execute("SELECT leaf FROM k WHERE key = ?", (k,)).fetchone()
        return row and row[0]


class Runs(Layout):
    def __init__(self, dir):
        super().__init__("runs", dir)
        self.db.executescript(
            "CREATE TABLE k (first INTEGER NOT NULL, level INTEGER NOT NULL, key BLOB NOT NULL,"
            " leaf INTEGER NOT NULL, PRIMARY KEY (first, level, key, leaf)) STRICT, WITHOUT ROWID;"
            "CREATE TABLE runs (first INTEGER NOT NULL, level INTEGER NOT NULL,"
            " end_leaf INTEGER NOT NULL, PRIMARY KEY (first, level)) STRICT;"
        )

    def insert(self, start, rows):
        db = self.db
        db.executemany(
            "INSERT OR IGNORE INTO k VALUES (?, 0, ?, ?)", [(start, k, l) for k, l in rows]
        )
        db.execute("INSERT INTO runs VALUES (?, 0, ?)", (start, start + len(rows)))
        while True:
            newest = db.execute(
                "SELECT first, level, end_leaf FROM runs ORDER BY first DESC LIMIT ?", (FANOUT,)
            ).fetchall()
            if len(newest) < FANOUT or len({lv for _, lv, _ in newest}) != 1:
                return
            level, first, end = newest[0][1], newest[-1][0], newest[0][2]
            firsts = [f for f, _, _ in newest]
            q = ",".join("?" * len(firsts))
            db.execute(
                f"INSERT OR IGNORE INTO k SELECT ?, ?, key, leaf FROM k"
                f" WHERE first IN ({q}) AND level = ? ORDER BY key, leaf",
                [first, level + 1, *firsts, level],
            )
            db.execute(f"DELETE FROM k WHERE first IN ({q}) AND level = ?", [*firsts, level])
            db.execute(f"DELETE FROM runs WHERE first IN ({q}) AND level = ?", [*firsts, level])
            db.execute("INSERT INTO runs VALUES (?, ?, ?)", (first, level + 1, end))

    def runs(self):
        return self.db.execute("SELECT count(*) FROM runs").fetchone()[0]

    def lookup(self, k):
        for first, level in self.db.execute("SELECT first, level FROM runs").fetchall():
            row = self.db.execute(
                "SELECT leaf FROM k WHERE first = ? AND level = ? AND key = ?", (first, level, k)
            ).fetchone()
            if row:
                return row[0]
        return None


def main():
    dir = tempfile.mkdtemp(prefix="evault-index-layout-")
    layouts = [BTree(dir), Runs(dir)]
    print(f"{N:,} records, batches of {BATCH:,}, fanout {FANOUT}, in {dir}")
    last = {l.name: (0.0, 0) for l in layouts}
    done = 0
    for start in range(0, N, BATCH):
        rows = sorted((key(i), i) for i in range(start, min(N, start + BATCH)))
        for l in layouts:
            l.add(start, rows)
        if (start + len(rows)) // REPORT != start // REPORT or start + len(rows) == N:
            n = start + len(rows)
            figures = {}
            for l in layouts:
                seconds, bytes = l.seconds - last[l.name][0], l.bytes - last[l.name][1]
                last[l.name] = (l.seconds, l.bytes)
                probe = [random.randrange(n) for _ in range(PROBES)]
                t = time.perf_counter()
                for i in probe:
                    assert l.lookup(key(i)) == i
                lookups = PROBES / (time.perf_counter() - t)
                figures[l.name] = ((n - done) / seconds, bytes / (n - done), lookups)
                print(
                    f"{l.name:>5} at {n:>10,}: {figures[l.name][0]:>9,.0f} records/s,"
                    f" {figures[l.name][1]:>7,.0f} B written/record,"
                    f" file {os.path.getsize(l.path) / n:>4.0f} B/record, {l.runs():>3} runs,"
                    f" {lookups:>7,.0f} lookups/s",
                    flush=True,
                )
            (br, bb, bl), (rr, rb, rl) = figures["btree"], figures["runs"]
            print(
                f"   runs/btree: {rr / br:.2f}x the rate, {rb / bb:.2f}x the bytes,"
                f" {rl / bl:.2f}x the lookups",
                flush=True,
            )
            done = n
    for l in layouts:
        l.db.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(l.path + suffix):
                os.remove(l.path + suffix)
    os.rmdir(dir)


if __name__ == "__main__":
    main()
