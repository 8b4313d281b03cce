#!/usr/bin/env bash
# HTTP single-record ingest of two evault builds in the same run: for each
# build, a fresh data dir (auth and audit on, the defaults), GET /healthz as
# the same-server baseline, then unique single-record POSTs; runs alternate
# between the builds so that drift on a shared machine hits both alike.
# Prints each figure beside its baseline and the ratio ingest/healthz, the
# figure to compare between builds (a regression check for refactors).
#
#   bash bench/compare_http.sh OLD_EVAULT_BINARY NEW_EVAULT_BINARY [RUNS]
#
# Environment: EVAULT_BENCH_SECONDS (20).
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 runs=${3:-2}
secs="${EVAULT_BENCH_SECONDS:-20}"
port=18475
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
trap 'pkill -f "serve --data-dir .* --listen 127.0.0.1:$port" 2>/dev/null || true' EXIT
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

one() { # one BINARY LABEL: prints "rps base_rps p99 base_p99 non201"
  local bin=$1 data
  data=$(mktemp -d)
  "$bin" sa create --data-dir "$data" --principal bench --roles ingester --key-id bench >/dev/null 2>&1
  local token
  token=$("$bin" token mint --data-dir "$data" --key-id bench --ttl 1h)
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --grpc-listen off >/tmp/evault-compare.log 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  local base ingest
  base=$(wrk -t2 -c64 -d10s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
  ingest=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "cmp$$$RANDOM" "$token" | grep RESULT)
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$data"
  echo "$(echo "$ingest" | field rps) $(echo "$base" | field rps) $(echo "$ingest" | field p99_ms) $(echo "$base" | field p99_ms) $(echo "$ingest" | field non201)"
}

echo "| run | build | POST /api/v1/evidence rec/s | GET /healthz req/s (same server) | ratio | p99 ms (ingest / healthz) | non-201 |"
echo "|---|---|---|---|---|---|---|"
declare -A sum
for r in $(seq 1 "$runs"); do
  for label in old new; do
    bin=$old; [ "$label" = new ] && bin=$new
    read -r rps base p99 bp99 bad < <(one "$bin")
    ratio=$(python3 -c "print(f'{$rps/$base:.3f}')")
    sum[$label]=$(python3 -c "print(${sum[$label]:-0} + $ratio)")
    echo "| $r | $label | $rps | $base | $ratio | $p99 / $bp99 | $bad |"
  done
done
python3 - "${sum[old]}" "${sum[new]}" "$runs" <<'PY'
import sys
old, new, runs = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
o, n = old / runs, new / runs
print(f"\nmean ratio ingest/healthz: old {o:.3f}, new {n:.3f}; new/old = {n / o:.3f}")
PY
