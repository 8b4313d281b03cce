#!/usr/bin/env bash
# Inclusion-proof GETs before and after stored inner tile levels (issue 13,
# step 2), on the same log in the same run: one data directory, filled once
# through the vault by the BEFORE binaries, copied; the BEFORE `evault`
# serves one copy, this tree's `evault` the other (migrating it to schema 8
# at start, timed). Each server is measured beside GET /healthz on itself,
# and the two alternate for ROUNDS rounds (the machines are shared: compare
# ratios).
#
# usage: bash bench/proof_inner.sh BEFORE_BIN_DIR [RECORDS]
#   BEFORE_BIN_DIR holds `evault` and `fill` built from a commit without
#   inner levels, e.g. a4e89c09:
#     git worktree add /tmp/before a4e89c09 && (cd /tmp/before &&
#     cargo build --release -p evault -p evault-bench) && mkdir /tmp/before-bin &&
#     cp $CARGO_TARGET_DIR/release/{evault,fill} /tmp/before-bin/
# Environment: EVAULT_BENCH_SECONDS (15), EVAULT_BENCH_ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/.."

before=${1:?usage: bench/proof_inner.sh BEFORE_BIN_DIR [RECORDS]}
records=${2:-1000000}
secs="${EVAULT_BENCH_SECONDS:-15}"
rounds="${EVAULT_BENCH_ROUNDS:-2}"
port=18481
work=$(mktemp -d)
trap 'pkill -f "serve --data-dir $work" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -p evault >&2
after="${CARGO_TARGET_DIR:-target}/release"

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
serve() { # serve BIN DIR: starts BIN's vault on DIR, waits for /healthz
  "$1/evault" serve --data-dir "$2" --state-dir "$2.state" --listen "127.0.0.1:$port" \
    --grpc-listen "127.0.0.1:$((port + 1))" >"$2.log" 2>&1 &
  for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "evault serve did not start:" >&2; cat "$2.log" >&2; exit 1
}
stop() {
  pkill -f "serve --data-dir $work" || true
  while pgrep -f "serve --data-dir $work" >/dev/null; do sleep 0.1; done
}

echo "== filling $records records through the vault (before binaries)" >&2
"$before/fill" "$work/seed" "$records" "$work/ids.txt" >&2
"$before/evault" sa create --data-dir "$work/seed" --principal bench-auditor --roles auditor \
  --key-id bench-auditor >/dev/null
for side in before after; do
  cp -a "$work/seed" "$work/$side"
  cp -a "$work/seed.state" "$work/$side.state"
done
token=$("$before/evault" token mint --data-dir "$work/seed" --key-id bench-auditor --ttl 1h)

# The first start of this tree's binary migrates (fills the inner levels).
started=$(date +%s.%N)
serve "$after" "$work/after"
migrated=$(echo "$(date +%s.%N) - $started" | bc)
stop
started=$(date +%s.%N)
serve "$after" "$work/after"
restarted=$(echo "$(date +%s.%N) - $started" | bc)
stop

echo "| round | server | proofs req/s | p50 ms | p99 ms | GET /healthz req/s | proofs / healthz |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    serve "$bin" "$work/$side"
    base=$(wrk -t2 -c64 -d5s --latency -s bench/baseline.lua "http://127.0.0.1:$port/healthz" | grep RESULT)
    proofs=$(wrk -t2 -c64 -d"${secs}s" --latency -s bench/proof.lua "http://127.0.0.1:$port" -- \
      "$work/ids.txt" "$token" | grep RESULT)
    stop
    if [ "$(echo "$proofs" | field non200)" != 0 ] || [ "$(echo "$proofs" | field errors)" != 0 ]; then
      echo "non-200 replies or socket errors: $proofs" >&2; exit 1
    fi
    p=$(echo "$proofs" | field rps); b=$(echo "$base" | field rps)
    echo "| $round | $side | $p | $(echo "$proofs" | field p50_ms) | $(echo "$proofs" | field p99_ms) | $b | $(echo "scale=3; $p / $b" | bc) |"
  done
done
echo
echo "tree size $records; first start of this tree's binary (schema 8 migration included): ${migrated} s; the next start: ${restarted} s"
