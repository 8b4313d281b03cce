#!/usr/bin/env bash
# All vault benchmarks of the vault-core issue, each figure beside a baseline
# measured in the same run (these machines are shared: compare ratios).
#
#   1. store-level durable append vs raw SQLite and pymerkle  (bench/store.sh)
#   2. HTTP single-record ingest, 64 clients (wrk)            vs GET /healthz on the same server
#   3. inclusion-proof GETs at a large tree (wrk)             vs GET /healthz on the same server
#   4. ack-to-checkpoint latency with default settings
#
# Environment: EVAULT_BENCH_SECONDS (20), EVAULT_BENCH_PROOF_TREE (10000000;
# the data dir is filled once through the vault and kept in
# EVAULT_BENCH_PROOF_DIR for later runs), EVAULT_BENCH_SKIP (comma list of
# store,http,proof,ack).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${EVAULT_BENCH_SECONDS:-20}"
proof_tree="${EVAULT_BENCH_PROOF_TREE:-10000000}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
proof_dir="${EVAULT_BENCH_PROOF_DIR:-$cache/evault-bench-proofs-$proof_tree}"
skip=",${EVAULT_BENCH_SKIP:-},"
port=18471
summary=$(mktemp)
trap 'rm -f "$summary"; pkill -f "evault serve --data-dir .* --listen 127.0.0.1:$port" 2>/dev/null || true' EXIT

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk" >&2
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi
cargo build --release -p evault -p evault-bench >&2
bin=target/release

serve() { # serve DATA_DIR: starts the vault in the background, waits for it
  "$bin/evault" serve --data-dir "$1" --listen "127.0.0.1:$port" >/tmp/evault-bench-serve.log 2>&1 &
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "bench: evault serve did not start:" >&2; cat /tmp/evault-bench-serve.log >&2; exit 1
}
stop() { pkill -f "evault serve --data-dir .* --listen 127.0.0.1:$port" || true; sleep 1; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

if [[ $skip != *,store,* ]]; then
  bash bench/store.sh | tee -a "$summary"
fi

if [[ $skip != *,http,* ]]; then
  echo "== HTTP ingest: wrk -t2 -c64 -d${secs}s, unique single-record POSTs" >&2
  data=$(mktemp -d)
  serve "$data"
  base=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
  ingest=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "run$$" | grep RESULT)
  stop; rm -rf "$data"
  {
    echo
    echo "== HTTP single-record ingest, 64 concurrent clients (target >= 15000 rec/s, p99 < 25 ms)"
    echo "| figure | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    echo "| POST /api/v1/evidence (durable, 201) | $(echo "$ingest" | field rps) | $(echo "$ingest" | field p50_ms) | $(echo "$ingest" | field p99_ms) |"
    echo "| baseline: GET /healthz, same server | $(echo "$base" | field rps) | $(echo "$base" | field p50_ms) | $(echo "$base" | field p99_ms) |"
    echo "non-201 replies: $(echo "$ingest" | field non201), socket errors: $(echo "$ingest" | field errors)"
  } | tee -a "$summary"
fi

if [[ $skip != *,proof,* ]]; then
  if [ ! -s "$proof_dir/ids.txt" ]; then
    echo "== filling $proof_dir with $proof_tree records through the vault (once)" >&2
    "$bin/fill" "$proof_dir" "$proof_tree" "$proof_dir/ids.txt.tmp"
    mv "$proof_dir/ids.txt.tmp" "$proof_dir/ids.txt"
  fi
  serve "$proof_dir"
  size=$(curl -fs "http://127.0.0.1:$port/api/v1/log" | sed -n 's/.*"checkpoint_size":\([0-9]*\).*/\1/p')
  base=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
  proofs=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/proof.lua "http://127.0.0.1:$port" -- "$proof_dir/ids.txt" | grep RESULT)
  stop
  {
    echo
    echo "== inclusion-proof GETs at tree size $size, 64 clients (target >= 30000/s)"
    echo "| figure | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    echo "| GET /api/v1/evidence/{id}/proof | $(echo "$proofs" | field rps) | $(echo "$proofs" | field p50_ms) | $(echo "$proofs" | field p99_ms) |"
    echo "| baseline: GET /healthz, same server | $(echo "$base" | field rps) | $(echo "$base" | field p50_ms) | $(echo "$base" | field p99_ms) |"
    echo "non-200 replies: $(echo "$proofs" | field non200), socket errors: $(echo "$proofs" | field errors)"
  } | tee -a "$summary"
fi

if [[ $skip != *,ack,* ]]; then
  ack=$("$bin/ack_latency" 20000 64)
  {
    echo
    echo "== ack-to-checkpoint latency, default settings (checkpoint_interval 500 ms; target p99 < 1 s)"
    echo "$ack"
  } | tee -a "$summary"
fi

echo
echo "================ summary ================"
cat "$summary"
