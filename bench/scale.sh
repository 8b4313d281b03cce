#!/usr/bin/env bash
# The vault at scale (issue #13's 10M figures), each beside a baseline of
# the same run: a data directory filled through the vault by `fill` (once;
# kept for later runs), then
#   - bytes on disk per record, beside the payload and leaf data it holds;
#   - start-up time (`evault serve` until it serves), beside the same on an
#     empty data directory;
#   - inclusion-proof GETs and record GETs, 64 clients (wrk), beside
#     GET /healthz on the same server.
#
# usage: bash bench/scale.sh DATA_DIR [RECORDS]   (RECORDS default 10000000)
# Environment: EVAULT_BENCH_SECONDS (20), CARGO_TARGET_DIR (target).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: bench/scale.sh DATA_DIR [RECORDS]}
n=${2:-10000000}
secs="${EVAULT_BENCH_SECONDS:-20}"
port=18481
bin="${CARGO_TARGET_DIR:-target}/release"
trap 'pkill -f "evault serve --data-dir .* --listen 127.0.0.1:$port" 2>/dev/null || true' EXIT
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release -p evault -p evault-bench >&2

if [ ! -s "$dir/ids.txt" ]; then
  echo "== filling $dir with $n records through the vault (once)" >&2
  "$bin/fill" "$dir" "$n" "$dir/ids.txt.tmp" 2>&1 | tail -3 >&2
  mv "$dir/ids.txt.tmp" "$dir/ids.txt"
fi

# serve DATA_DIR: starts the vault, prints the seconds until it serves.
serve() {
  local d=$1 t0 t1
  t0=$(date +%s.%N)
  "$bin/evault" serve --data-dir "$d" --state-dir "$d.state" --listen "127.0.0.1:$port" --grpc-listen "127.0.0.1:$((port + 1))" >"/tmp/evault-scale-serve.log" 2>&1 &
  for _ in $(seq 1 3000); do
    if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      t1=$(date +%s.%N); echo "$t1 - $t0" | bc; return 0
    fi
    sleep 0.01
  done
  echo "bench: evault serve did not start:" >&2; cat /tmp/evault-scale-serve.log >&2; exit 1
}
stop() { pkill -f "evault serve --data-dir .* --listen 127.0.0.1:$port" || true; while pgrep -f "evault serve --data-dir .* --listen 127.0.0.1:$port" >/dev/null; do sleep 0.1; done; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

size=$(sqlite3 "file:$dir/evault.db?mode=ro" "SELECT size FROM tree_state" 2>/dev/null || echo "$n")
echo "== bytes on disk at $size records"
py=$(command -v python3)
"$py" - "$dir" <<'PY'
import os, sqlite3, sys
d = sys.argv[1]
con = sqlite3.connect(f"file:{d}/evault.db?mode=ro", uri=True)
n, leaf, payload = con.execute(
    "SELECT count(*), sum(length(leaf_data)), sum(coalesce(length(payload), 0)) FROM records").fetchone()
audit_n, audit_leaf = con.execute("SELECT count(*), sum(length(leaf_data)) FROM audit_events").fetchone()
files = {}
for root, _, names in os.walk(d):
    for name in names:
        p = os.path.join(root, name)
        files[os.path.relpath(p, d)] = os.path.getsize(p)
total = sum(files.values())
print("| file | MiB | bytes per record |")
print("|---|---|---|")
for name, b in sorted(files.items(), key=lambda kv: -kv[1])[:6]:
    print(f"| {name} | {b / 2**20:,.0f} | {b / n:,.0f} |")
print(f"| all files | {total / 2**20:,.0f} | {total / n:,.0f} |")
base = (leaf + payload) / n
print(f"baseline: payload + leaf data = {base:,.0f} B per record (payload {payload / n:,.0f}, leaf {leaf / n:,.0f});"
      f" audit events {audit_n} ({audit_leaf / max(audit_n, 1):,.0f} B leaf each)")
print(f"ratio all files / (payload + leaf data): {total / n / base:.2f}")
PY

echo
echo "== start-up: evault serve until it answers, 3 runs each"
empty=$(mktemp -d)
e=(); f=()
for i in 1 2 3; do
  e+=("$(serve "$empty")"); stop
  f+=("$(serve "$dir")"); stop
done
rm -rf "$empty" "$empty.state"
echo "| data dir | run 1 s | run 2 s | run 3 s |"
echo "|---|---|---|---|"
echo "| empty (baseline) | ${e[0]} | ${e[1]} | ${e[2]} |"
echo "| $size records | ${f[0]} | ${f[1]} | ${f[2]} |"

echo
echo "== GETs at tree size $size, wrk -t2 -c64 -d${secs}s, random ids"
serve "$dir" >/dev/null
"$bin/evault" sa create --data-dir "$dir" --principal bench-auditor --roles auditor --key-id bench-auditor >/dev/null 2>&1 || true
auditor=$("$bin/evault" token mint --data-dir "$dir" --key-id bench-auditor --ttl 1h)
base=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
proofs=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/proof.lua "http://127.0.0.1:$port" -- "$dir/ids.txt" "$auditor" | grep RESULT)
records=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/proof.lua "http://127.0.0.1:$port" -- "$dir/ids.txt" "$auditor" record | grep RESULT)
base2=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
stop
echo "| figure | req/s | p50 ms | p99 ms | non-200 |"
echo "|---|---|---|---|---|"
echo "| GET /api/v1/evidence/{id}/proof | $(echo "$proofs" | field rps) | $(echo "$proofs" | field p50_ms) | $(echo "$proofs" | field p99_ms) | $(echo "$proofs" | field non200) |"
echo "| GET /api/v1/evidence/{id} | $(echo "$records" | field rps) | $(echo "$records" | field p50_ms) | $(echo "$records" | field p99_ms) | $(echo "$records" | field non200) |"
echo "| baseline: GET /healthz, before | $(echo "$base" | field rps) | $(echo "$base" | field p50_ms) | $(echo "$base" | field p99_ms) | |"
echo "| baseline: GET /healthz, after | $(echo "$base2" | field rps) | $(echo "$base2" | field p50_ms) | $(echo "$base2" | field p99_ms) | |"
