#!/usr/bin/env bash
# Store append benchmark: evault's SqliteStore, a raw-SQLite baseline on the
# same schema (both from `cargo bench -p evault-store --bench append`), and
# pymerkle 7's SqliteTree as the peer, with the same record count and batch
# sizes, and the disk's bound: the same rows' bytes appended to one file
# with an fdatasync per batch (the ceiling of any durable log store here).
# "evault+index" adds the index follower's work (labels, payload digests;
# off the commit path since store schema 9), done serially after the
# commits. Prints one table with the ratios the storage issues ask for: evault >=
# 300,000 rec/s, >= 2x pymerkle; evault/disk says how much of the disk's
# bound the store reaches.
#
# Environment: EVAULT_BENCH_RECORDS (200000), EVAULT_BENCH_BATCHES
# (1000,10000), EVAULT_BENCH_ROUNDS (2, best reported), EVAULT_BENCH_DIR
# (temporary databases; default the system temp dir).
set -euo pipefail

cd "$(dirname "$0")/.."

export EVAULT_BENCH_RECORDS="${EVAULT_BENCH_RECORDS:-200000}"
export EVAULT_BENCH_BATCHES="${EVAULT_BENCH_BATCHES:-1000,10000}"
export EVAULT_BENCH_ROUNDS="${EVAULT_BENCH_ROUNDS:-2}"

venv="${XDG_CACHE_HOME:-$HOME/.cache}/evault-bench-venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'pymerkle>=7,<8'

results="$(mktemp)"
trap 'rm -f "$results"' EXIT

echo "== evault store and raw SQLite (cargo bench -p evault-store --bench append)" >&2
cargo bench -p evault-store --bench append | tee -a "$results"
echo >&2
echo "== pymerkle (bench/pymerkle_append.py)" >&2
"$venv/bin/python" bench/pymerkle_append.py | tee -a "$results"

echo
echo "== store append, ${EVAULT_BENCH_RECORDS} durable records of 1 KiB, best of ${EVAULT_BENCH_ROUNDS}"
awk '
/^RESULT / {
    who = $2
    for (i = 3; i <= NF; i++) {
        split($i, kv, "=")
        f[kv[1]] = kv[2]
    }
    rps[who, f["batch"]] = f["rps"]
    if (!(f["batch"] in seen)) { seen[f["batch"]] = 1; order[++n] = f["batch"] }
}
function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2f", a / b) : "n/a" }
END {
    printf "| %8s | %14s | %14s | %14s | %14s | %14s | %10s | %15s | %11s | %21s |\n", "batch", "evault rec/s", "evault+index", "raw SQLite", "pymerkle", "disk bound", "evault/raw", "evault/pymerkle", "evault/disk", "(evault+index)/pymerkle"
    printf "|----------|----------------|----------------|----------------|----------------|----------------|------------|-----------------|-------------|-----------------------|\n"
    for (i = 1; i <= n; i++) {
        b = order[i]
        e = rps["evault", b]; x = rps["evault_index", b]; r = rps["raw", b]; p = rps["pymerkle", b]; d = rps["disk", b]
        printf "| %8s | %14s | %14s | %14s | %14s | %14s | %10s | %15s | %11s | %21s |\n", b, e, x, r, p, d, ratio(e, r), ratio(e, p), ratio(e, d), ratio(x, p)
    }
    print ""
    print "targets (storage v2, issue #13): evault >= 300000 rec/s, evault/pymerkle >= 2; the disk bound is this machine'"'"'s ceiling for any durable log store"
}' "$results"
