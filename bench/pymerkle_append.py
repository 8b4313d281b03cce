#!/usr/bin/env python3
"""Peer benchmark for the evault store: pymerkle 7 ``SqliteTree``.

Appends the same number of 1 KiB payloads as ``cargo bench -p evault-store
--bench append``, in the same batch sizes, each batch one
``SqliteTree.append_entries`` call (one SQLite transaction, pymerkle's own
settings: rollback journal, ``synchronous=FULL``, so each commit is durable),
into a fresh database per run. Prints records/s and ``RESULT`` lines for
bench/store.sh.

pymerkle stores less per record than evault (the entry and its hash, no
metadata, labels or secondary indexes) and hashes in Python; it is the
nearest off-the-shelf persistent Merkle log to compare with.
"""

import argparse
import os
import random
import sys
import tempfile
import time

try:
    import pymerkle
    from pymerkle import SqliteTree
except ImportError:  # pragma: no cover - reported to the caller
    sys.exit("pymerkle is not installed: pip install 'pymerkle>=7,<8'")

PAYLOAD_SIZE = 1024


def run(payloads, batch, directory):
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = os.path.join(tmp, "pymerkle.db")
        tree = SqliteTree(path)
        try:
            start = time.perf_counter()
            for i in range(0, len(payloads), batch):
                chunk = payloads[i:i + batch]
                tree.append_entries(chunk, chunksize=len(chunk))
            took = time.perf_counter() - start
            size = tree.get_size()
        finally:
            tree.close()
    if size != len(payloads):
        sys.exit(f"pymerkle tree has {size} leaves, expected {len(payloads)}")
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int,
                    default=int(os.environ.get("EVAULT_BENCH_RECORDS", 200_000)))
    ap.add_argument("--batches",
                    default=os.environ.get("EVAULT_BENCH_BATCHES", "1000,10000"))
    ap.add_argument("--rounds", type=int,
                    default=int(os.environ.get("EVAULT_BENCH_ROUNDS", 2)))
    ap.add_argument("--dir", default=os.environ.get("EVAULT_BENCH_DIR"),
                    help="where the temporary databases go")
    args = ap.parse_args()
    if not pymerkle.__version__.startswith("7."):
        sys.exit(f"expected pymerkle 7.x, found {pymerkle.__version__}")
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)

    rng = random.Random(0x9E3779B9)
    payloads = [rng.randbytes(PAYLOAD_SIZE) for _ in range(args.records)]
    print(f"pymerkle {pymerkle.__version__}: {args.records} records of "
          f"{PAYLOAD_SIZE} B", file=sys.stderr)

    rows = []
    for batch in (int(b) for b in args.batches.split(",") if b.strip()):
        best = 0.0
        for r in range(1, max(args.rounds, 1) + 1):
            rate = args.records / run(payloads, batch, args.dir)
            print(f"batch {batch:>6} round {r}: pymerkle {rate:>10.0f} rec/s",
                  file=sys.stderr)
            best = max(best, rate)
        print(f"RESULT pymerkle batch={batch} records={args.records} rps={best:.0f}")
        rows.append((batch, best))

    print()
    print(f"pymerkle SqliteTree.append_entries, {args.records} records of "
          f"{PAYLOAD_SIZE} B, best of {args.rounds} round(s)")
    print(f"| {'batch':>8} | {'pymerkle rec/s':>16} |")
    print(f"|{'-' * 10}|{'-' * 18}|")
    for batch, rate in rows:
        print(f"| {batch:>8} | {rate:>16.0f} |")


if __name__ == "__main__":
    main()
