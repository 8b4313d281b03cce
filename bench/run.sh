#!/usr/bin/env bash
# All vault benchmarks of the vault-core issue, each figure beside a baseline
# measured in the same run (these machines are shared: compare ratios).
#
#   1. store-level durable append vs raw SQLite and pymerkle  (bench/store.sh)
#   2. HTTP single-record ingest, 64 clients (wrk)            vs GET /healthz on the same server
#   3. inclusion-proof GETs at a large tree (wrk)             vs GET /healthz on the same server
#   4. ack-to-checkpoint latency with default settings
#   5. HTTP ingest with auth and audit on vs both off (same run, same wrk)
#   6. streaming ingest, gRPC IngestStream and NDJSON, 256-byte records, vs
#      store-level append of the same records (same run), server RSS
#   after 2 and 6: the index lag (ack to index, p99 and max) from /metrics
#
# Environment: EVAULT_BENCH_SECONDS (20), EVAULT_BENCH_PROOF_TREE (10000000;
# the data dir is filled once through the vault and kept in
# EVAULT_BENCH_PROOF_DIR for later runs), EVAULT_BENCH_SKIP (comma list of
# store,http,proof,ack,auth,stream);
# EVAULT_BENCH_STREAM_RECORDS (1000000), EVAULT_BENCH_STREAMS (4).
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
bin="${CARGO_TARGET_DIR:-target}/release"

grpc_port=$((port + 1))
serve() { # serve DATA_DIR [FLAGS...]: starts the vault in the background, waits for it
  local dir=$1; shift
  "$bin/evault" serve --data-dir "$dir" --state-dir "$dir.state" --listen "127.0.0.1:$port" --grpc-listen "127.0.0.1:$grpc_port" "$@" >/tmp/evault-bench-serve.log 2>&1 &
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "bench: evault serve did not start:" >&2; cat /tmp/evault-bench-serve.log >&2; exit 1
}
stop() { pkill -f "evault serve --data-dir .* --listen 127.0.0.1:$port" || true; sleep 1; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
lag() { # lag TOKEN: the index lag p99 and max, in ms, over the server's last minute of load (the summary's window)
  curl -fs -H "Authorization: Bearer $1" "http://127.0.0.1:$port/metrics" | awk '
    BEGIN { p99 = "n/a"; max = "n/a" }
    /^evault_index_lag_seconds\{quantile="0.99"\}/ { p99 = sprintf("%.1f", $2 * 1000) }
    /^evault_index_lag_seconds\{quantile="1"\}/ { max = sprintf("%.1f", $2 * 1000) }
    END { print p99, max }'
}
ingester_token() { # ingester_token DATA_DIR: a service account and a 1-hour token in DATA_DIR (auditor too: /metrics)
  "$bin/evault" sa create --data-dir "$1" --principal bench --roles ingester,auditor --key-id bench >/dev/null
  "$bin/evault" token mint --data-dir "$1" --key-id bench --ttl 1h
}

if [[ $skip != *,store,* ]]; then
  bash bench/store.sh | tee -a "$summary"
fi

if [[ $skip != *,http,* ]]; then
  echo "== HTTP ingest: wrk -t2 -c64 -d${secs}s, unique single-record POSTs" >&2
  data=$(mktemp -d)
  token=$(ingester_token "$data")
  serve "$data"
  base=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
  ingest=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "run$$" "$token" | grep RESULT)
  read -r lag_p99 lag_max < <(lag "$token")
  stop; rm -rf "$data" "$data.state"
  {
    echo
    echo "== HTTP single-record ingest, 64 concurrent clients (target >= 15000 rec/s, p99 < 25 ms)"
    echo "| figure | req/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    echo "| POST /api/v1/evidence (durable, 201) | $(echo "$ingest" | field rps) | $(echo "$ingest" | field p50_ms) | $(echo "$ingest" | field p99_ms) |"
    echo "| baseline: GET /healthz, same server | $(echo "$base" | field rps) | $(echo "$base" | field p50_ms) | $(echo "$base" | field p99_ms) |"
    echo "non-201 replies: $(echo "$ingest" | field non201), socket errors: $(echo "$ingest" | field errors)"
    echo "index lag (ack to label/digest index, per group commit) during this load: p99 $lag_p99 ms, max $lag_max ms"
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
  "$bin/evault" sa create --data-dir "$proof_dir" --principal bench-auditor --roles auditor --key-id bench-auditor >/dev/null 2>&1 || true
  auditor=$("$bin/evault" token mint --data-dir "$proof_dir" --key-id bench-auditor --ttl 1h)
  proofs=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/proof.lua "http://127.0.0.1:$port" -- "$proof_dir/ids.txt" "$auditor" | grep RESULT)
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

if [[ $skip != *,auth,* ]]; then
  # Alternating runs, so that drift on a shared machine hits both alike.
  echo "== HTTP ingest with auth + audit on vs off: wrk -t2 -c64 -d${secs}s, 2 runs each" >&2
  on_rps=(); off_rps=(); on_p99=(); off_p99=(); on_bad=0; off_bad=0
  for i in 1 2; do
    data=$(mktemp -d)
    serve "$data" --insecure-no-auth --insecure-no-audit
    r=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "off$i$$" | grep RESULT)
    stop; rm -rf "$data" "$data.state"
    off_rps+=("$(echo "$r" | field rps)"); off_p99+=("$(echo "$r" | field p99_ms)"); off_bad=$((off_bad + $(echo "$r" | field non201)))
    data=$(mktemp -d)
    token=$(ingester_token "$data")
    serve "$data"
    r=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "on$i$$" "$token" | grep RESULT)
    events=$(curl -fs "http://127.0.0.1:$port/api/v1/log" >/dev/null; ls "$data"/audit/*.jsonl >/dev/null 2>&1 && cat "$data"/audit/*.jsonl | wc -l || echo 0)
    stop; rm -rf "$data" "$data.state"
    on_rps+=("$(echo "$r" | field rps)"); on_p99+=("$(echo "$r" | field p99_ms)"); on_bad=$((on_bad + $(echo "$r" | field non201)))
  done
  off_mean=$(( (${off_rps[0]} + ${off_rps[1]}) / 2 )); on_mean=$(( (${on_rps[0]} + ${on_rps[1]}) / 2 ))
  {
    echo
    echo "== HTTP single-record ingest with auth + audit on vs off, 64 clients (target: on >= 80 % of off)"
    echo "| figure | run 1 req/s | run 2 req/s | mean req/s | p99 ms (runs) |"
    echo "|---|---|---|---|---|"
    echo "| auth + audit off (--insecure-no-auth --insecure-no-audit) | ${off_rps[0]} | ${off_rps[1]} | $off_mean | ${off_p99[0]}, ${off_p99[1]} |"
    echo "| auth (HS256 token) + audit trail on (default) | ${on_rps[0]} | ${on_rps[1]} | $on_mean | ${on_p99[0]}, ${on_p99[1]} |"
    echo "ratio on/off: $(awk "BEGIN { printf \"%.2f\", $on_mean / $off_mean }"); non-201 replies: off $off_bad, on $on_bad; audit events mirrored in the last on-run: $events"
  } | tee -a "$summary"
fi

if [[ $skip != *,stream,* ]]; then
  n="${EVAULT_BENCH_STREAM_RECORDS:-1000000}"
  streams="${EVAULT_BENCH_STREAMS:-4}"
  echo "== streaming ingest: $n records of 256 B over $streams streams, gRPC and NDJSON; store append of the same size" >&2
  store_out=$(EVAULT_BENCH_PAYLOAD=256 EVAULT_BENCH_RECORDS="$n" EVAULT_BENCH_BATCHES=16384 EVAULT_BENCH_ROUNDS=1 \
    cargo bench -q -p evault-store --bench append 2>/dev/null)
  store=$(echo "$store_out" | grep '^RESULT evault ')
  raw=$(echo "$store_out" | grep '^RESULT raw ')
  rows=()
  for mode in grpc ndjson; do
    data=$(mktemp -d)
    token=$(ingester_token "$data")
    serve "$data"
    pid=$(pgrep -f "evault serve --data-dir $data" | head -1)
    addr="127.0.0.1:$port"; [ "$mode" = grpc ] && addr="127.0.0.1:$grpc_port"
    r=$("$bin/stream_load" "$mode" "$addr" "$token" "$n" "$streams" "$pid" | grep RESULT)
    read -r lag_p99 lag_max < <(lag "$token")
    stop; rm -rf "$data" "$data.state"
    rows+=("$r lag_p99=$lag_p99 lag_max=$lag_max")
  done
  store_rps=$(echo "$store" | field rps)
  {
    echo
    echo "== streaming ingest, $n durable records of 256 B, $streams concurrent streams, auth + audit on (targets: gRPC >= 200000/s, NDJSON >= 100000/s)"
    echo "| figure | records/s | of store append | server RSS max MiB | server VmHWM MiB | index lag p99 / max ms |"
    echo "|---|---|---|---|---|---|"
    for r in "${rows[@]}"; do
      rps=$(echo "$r" | field rps)
      echo "| $(echo "$r" | field mode) stream | $rps | $(awk "BEGIN { printf \"%.2f\", $rps / $store_rps }") | $(echo "$r" | field rss_max_mib) | $(echo "$r" | field hwm_mib) | $(echo "$r" | field lag_p99) / $(echo "$r" | field lag_max) |"
    done
    echo "| baseline: SqliteStore::append, batches of 16384 (cargo bench -p evault-store) | $store_rps | 1.00 | – | – | – |"
    echo "| baseline: raw SQLite batched insert, same rows | $(echo "$raw" | field rps) | – | – | – | – |"
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
