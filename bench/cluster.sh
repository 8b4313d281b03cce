#!/usr/bin/env bash
# Several vault nodes on one PostgreSQL database (issue 14), each figure
# beside a baseline measured in the same run (these machines are shared:
# compare ratios).
#
#   1. HTTP single-record ingest through 3 nodes (one leads, two forward to
#      it; wrk against each node at once)   vs one node on the same database
#      kind, and one node on the embedded SQLite store, same wrk settings;
#      each with the CPU time per acknowledged record, of the whole machine
#      (wrk and PostgreSQL included) and of the vault nodes, and the rate
#      that CPU time allows on this machine's cores
#   2. failover: a leader killed with SIGKILL, time until a standby
#      acknowledges a write, over EVAULT_BENCH_KILLS rounds (p50, max)
#      vs the lease ttl (the bound the design gives)
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres), as on
# these machines. Environment: EVAULT_BENCH_SECONDS (20), EVAULT_BENCH_KILLS
# (10), EVAULT_BENCH_PG (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${EVAULT_BENCH_SECONDS:-20}"
kills="${EVAULT_BENCH_KILLS:-10}"
pg="${EVAULT_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
db=evault_bench_cluster
ports=(18481 18483 18485)
work=$(mktemp -d)
trap 'pkill -f "evault serve --data-dir $work" 2>/dev/null || true; rm -rf "$work"' EXIT

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk" >&2
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi
cargo build --release -p evault >&2
bin="${CARGO_TARGET_DIR:-target}/release"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

fresh_db() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  "$bin/evault" migrate --store "$pg/$db" >/dev/null 2>&1
}
serve() { # serve N STORE [FLAGS...]: node N (0-2) in $work/nN, waits until it answers
  local n=$1 store=$2; shift 2
  local dir="$work/n$n" port=${ports[$n]}
  "$bin/evault" serve --data-dir "$dir" --state-dir "$dir.state" --store "$store" \
    --listen "127.0.0.1:$port" --grpc-listen "127.0.0.1:$((port + 1))" --node-id "node-$n" \
    --cluster-secret-file "$work/secret" "$@" >>"$work/n$n.log" 2>&1 &
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: node $n did not start:" >&2; cat "$work/n$n.log" >&2; exit 1
}
stop_all() { pkill -f "evault serve --data-dir $work" || true; sleep 1; }
share_keys() { # share_keys: node 0's log keys and service accounts to nodes 1 and 2
  for n in 1 2; do
    mkdir -p "$work/n$n"
    cp "$work/n0/log.key" "$work/n0/audit.key" "$work/n0/service-accounts.json" "$work/n$n/"
    chmod 600 "$work/n$n/"*
  done
}
reset() { stop_all; rm -rf "$work"/n*; mkdir -p "$work/n0"; }
token() { # token: a service account in node 0's directory and a 1-hour token
  "$bin/evault" sa create --data-dir "$work/n0" --principal bench --roles ingester,auditor --key-id bench >/dev/null
  "$bin/evault" token mint --data-dir "$work/n0" --key-id bench --ttl 1h
}
head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$work/secret"
chmod 600 "$work/secret"

# CPU accounting, to say what bounds the rate on this machine: the whole
# machine's busy time (/proc/stat) and the vault nodes' own (utime + stime
# of each evault process), over the load alone.
hz=$(getconf CLK_TCK)
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
nodes_cpu() { # ticks used so far by the running vault nodes
  local t=0 pid
  for pid in $(pgrep -f "evault serve --data-dir $work"); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
acked() { # acked RESULT-LINE...: 201 answers in all
  local n=0 line
  for line in "$@"; do
    n=$((n + $(echo "$line" | field requests) - $(echo "$line" | field non201)))
  done
  echo "$n"
}
# row LABEL SECONDS BUSY NODES RESULT-LINE...: one table row
row() {
  local label=$1 seconds=$2 b=$3 v=$4; shift 4
  local ok; ok=$(acked "$@")
  awk -v l="$label" -v ok="$ok" -v s="$seconds" -v b="$b" -v v="$v" -v hz="$hz" -v cores="$(nproc)" \
    'BEGIN { us = ok ? b / hz * 1e6 / ok : 0; printf "| %s | %.0f | %.0f | %.0f | %.0f |\n", l, ok / s, us, ok ? v / hz * 1e6 / ok : 0, us ? cores * 1e6 / us : 0 }'
}
# load PORTS...: wrk on each port at once, 64 connections in all; sets
# $results (the RESULT lines), $busy_ticks and $node_ticks
load() {
  local n=$# i=0 port b0 v0 pids=()
  local per=$((64 / n))
  b0=$(busy); v0=$(nodes_cpu)
  for port in "$@"; do
    wrk -t1 -c"$per" -d"${secs}s" --latency -s bench/ingest.lua "http://127.0.0.1:$port" -- "r$i$$" "$tok" | grep RESULT >"$work/wrk$i" &
    pids+=($!)
    i=$((i + 1))
  done
  # Only the loads: the vault nodes are children of this shell too.
  wait "${pids[@]}"
  busy_ticks=$(($(busy) - b0)); node_ticks=$(($(nodes_cpu) - v0))
  results=()
  for i in $(seq 0 $((n - 1))); do results+=("$(cat "$work/wrk$i")"); done
}

echo "== HTTP ingest: wrk, 64 connections in all, -d${secs}s, unique single-record POSTs" >&2
reset
tok=$(token)
serve 0 sqlite
load "${ports[0]}"
sqlite_row=$(row "baseline: 1 node on SQLite" "$secs" "$busy_ticks" "$node_ticks" "${results[@]}")
sqlite_p99=$(echo "${results[0]}" | field p99_ms)
reset
tok=$(token)
fresh_db
serve 0 "$pg/$db"
load "${ports[0]}"
one_row=$(row "baseline: 1 node on PostgreSQL" "$secs" "$busy_ticks" "$node_ticks" "${results[@]}")
one_p99=$(echo "${results[0]}" | field p99_ms)
reset
tok=$(token)
fresh_db
serve 0 "$pg/$db"
share_keys
serve 1 "$pg/$db"
serve 2 "$pg/$db"
load "${ports[@]}"
three_row=$(row "3 nodes on PostgreSQL (wrk on each)" "$secs" "$busy_ticks" "$node_ticks" "${results[@]}")
three_p99="$(echo "${results[0]}" | field p99_ms), $(echo "${results[1]}" | field p99_ms), $(echo "${results[2]}" | field p99_ms)"
three_bad=0
for r in "${results[@]}"; do three_bad=$((three_bad + $(echo "$r" | field non201))); done
forwarded=$(curl -fs -H "Authorization: Bearer $tok" "http://127.0.0.1:${ports[1]}/metrics" | awk '/^evault_forwarded_calls_total/ { s += $2 } END { print s + 0 }')
echo
echo "| HTTP ingest, $secs s | records/s (201) | machine CPU µs per record | vault nodes' CPU µs per record | bound on $(nproc) cores, records/s |"
echo "|---|---|---|---|---|"
echo "$three_row"
echo "$one_row"
echo "$sqlite_row"
echo "(p99 ms: 3 nodes $three_p99; 1 node on PostgreSQL $one_p99; SQLite $sqlite_p99. Non-201 answers through 3 nodes: $three_bad. Node 1 forwarded $forwarded calls to the leader. The bound is the cores divided by the machine's CPU time per record: wrk, PostgreSQL and the nodes together.)"

echo "== failover: $kills SIGKILLs of the leader, time until a standby acknowledges" >&2
reset
tok=$(token)
fresh_db
serve 0 "$pg/$db"
share_keys
serve 1 "$pg/$db"
leader=0
handover() { # handover SIGNAL: signals the leader; sets $took, the seconds until the other node acknowledges a write
  local standby=$((1 - leader)) url pid t0 t1 i=0
  url="http://127.0.0.1:${ports[$standby]}/api/v1/evidence"
  post() { curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" -H 'Content-Type: text/plain' --data "$1" "$url"; }
  # The standby forwards: a write through it is acknowledged by the leader.
  [ "$(post "before $(date +%s%N)")" = 201 ] || { echo "bench: a write through the standby failed" >&2; exit 1; }
  pid=$(pgrep -f "evault serve --data-dir $work/n$leader " | head -1)
  t0=$(date +%s.%N)
  kill "-$1" "$pid"
  until [ "$(post "after $(date +%s%N) $i")" = 201 ]; do
    i=$((i + 1))
    sleep 0.01
  done
  t1=$(date +%s.%N)
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  # The old leader comes back as a standby for the next round.
  serve "$leader" "$pg/$db"
  leader=$standby
  took=$(echo "$t1 - $t0" | bc)
}
times=()
for round in $(seq 1 "$kills"); do
  handover KILL
  times+=("$took")
  echo "round $round: SIGKILL to the first 201 through the other node: $took s" >&2
done
# The baseline: a planned handover (SIGTERM: the leader gives its lease
# up), the same measurement, 3 rounds.
planned=()
for round in 1 2 3; do
  handover TERM
  planned+=("$took")
done
stats() { # stats VALUES...: p50 and max
  local sorted
  sorted=$(printf '%s\n' "$@" | sort -n)
  echo "$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') $(echo "$sorted" | tail -1)"
}
read -r p50 max < <(stats "${times[@]}")
read -r planned_p50 planned_max < <(stats "${planned[@]}")
echo
echo "| failover, time to the first 201 through the other node | p50 s | max s |"
echo "|---|---|---|"
printf '| SIGKILL of the leader (%d rounds; lease ttl 3 s) | %.2f | %.2f |\n' "$kills" "$p50" "$max"
printf '| baseline: SIGTERM of the leader, a planned handover (3 rounds) | %.2f | %.2f |\n' "$planned_p50" "$planned_max"
stop_all
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
