#!/usr/bin/env bash
# API conformance gate, run by .ci/run: schemathesis against the OpenAPI
# document a real `evault serve` serves, with an admin token, every
# operation. Fails on any server error (5xx) and on any reply the document
# does not describe (status code, response schema, content type).
#
# Usage: .ci/schemathesis.sh EVAULT_BINARY
# Env:   SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, default 50)
#        SCHEMATHESIS_MAX_TIME (seconds for the whole run, default 240)
set -euo pipefail

evault=${1:?usage: $0 EVAULT_BINARY}
version=4.32.5
# Python 3.11.7's ast module fails hypothesis' lambda introspection inside
# schemathesis ("AST constructor recursion depth mismatch", a runtime error
# of the tool, not of the API); 3.13 does not, so it is required.
# A pyenv shim named python3.13 exists even when pyenv would not run it
# (3.13 installed but not selected): take the first candidate that runs.
python=
for candidate in python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
  found=$(command -v "$candidate" 2>/dev/null) || continue
  if "$found" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
    python=$found
    break
  fi
done
if [ -z "$python" ]; then
  echo "FAIL: schemathesis needs python3.13 on PATH (e.g. pyenv install 3.13)" >&2
  exit 1
fi
venv="$HOME/.cache/evault-schemathesis-$version-py313"
if [ ! -x "$venv/bin/schemathesis" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
"$venv/bin/schemathesis" --version

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
mkdir -p "$data"
# One principal with every role, so every operation is reachable; an
# admin-only token would make most operations a documented 403 and test
# little else.
key_id=$("$evault" sa create --data-dir "$data" --principal ci-schemathesis \
  --roles admin,auditor,ingester --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["created"]["key_id"])')
token=$("$evault" token mint --data-dir "$data" --key-id "$key_id" --ttl 1h)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$evault" serve --data-dir "$data" --state-dir "$work/state" --listen "127.0.0.1:$port" --grpc-listen off \
  --checkpoint-interval 100ms >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/serve.log"
    echo "FAIL: evault serve exited before it answered /healthz" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null

# A few records so reads, proofs and listings have something to find.
for i in 1 2 3; do
  curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' \
    --data-binary "schemathesis seed $i" "$base/api/v1/evidence?label=ci%3Dseed" >/dev/null
done

curl -fsS "$base/api/v1/openapi.json" -o "$work/openapi.json"
hooks_dir="$(cd "$(dirname "$0")" && pwd)"
status=0
# From the scratch directory: schemathesis keeps its example database in
# ./.schemathesis, which must not land in the checkout.
cd "$work"
EVAULT_OPENAPI_JSON="$work/openapi.json" \
PYTHONPATH="$hooks_dir" SCHEMATHESIS_HOOKS=schemathesis_hooks \
"$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --max-time "${SCHEMATHESIS_MAX_TIME:-240}" \
  --seed 11 \
  --workers 2 \
  --suppress-health-check all \
  --output-truncate true \
  || status=$?
if ! kill -0 "$server_pid" 2>/dev/null; then
  tail -n 40 "$work/serve.log"
  echo "FAIL: evault serve died during the run" >&2
  exit 1
fi
if grep -q 'panicked' "$work/serve.log"; then
  grep -m5 -A3 'panicked' "$work/serve.log"
  echo "FAIL: the server panicked during the run" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "FAIL: schemathesis found server errors or replies the OpenAPI document does not describe" >&2
  exit "$status"
fi
