#!/usr/bin/env bash
# Dependency audit gate, run by .ci/run: cargo-deny (deny.toml) over the
# workspace's and the fuzz crate's Cargo.lock. Advisories come from the
# RustSec snapshot the team keeps beside the checkout
# (../shared/advisory-db/advisory-db.tar.gz; nothing is fetched). Licences,
# bans and sources need no database and are always checked.
#
# Without the snapshot (a plain clone has no ../shared): the advisory check
# is skipped loudly, or fails when EVAULT_REQUIRE_AUDIT_DB=1.
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot=../shared/advisory-db/advisory-db.tar.gz
# cargo-deny keeps each database under <db-path>/<dir named after its URL>;
# this is the directory cargo-deny 0.20 uses for the default RustSec URL.
db_dir=advisory-db-3157b0e258782691

# Waivers carry "expires YYYY-MM-DD" in their reason; an expired one fails.
today=$(date -u +%F)
while read -r expiry; do
  if [[ "$expiry" < "$today" ]]; then
    grep -n "expires $expiry" deny.toml >&2
    echo "FAIL: an advisory waiver in deny.toml expired on $expiry; fix the dependency or renew the waiver with a reason" >&2
    exit 1
  fi
done < <(grep -oE 'expires [0-9]{4}-[0-9]{2}-[0-9]{2}' deny.toml | cut -d' ' -f2)

checks=(licenses bans sources)
if [ -f "$snapshot" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  tar xzf "$snapshot" -C "$root"
  mv "$root/advisory-db" "$root/$db_dir"
  export EVAULT_ADVISORY_DBS="$root"
  echo "advisories: RustSec snapshot, $(git -C "$root/$db_dir" log -1 --format='commit %h of %cs' 2>/dev/null || echo 'unknown date')"
  checks=(advisories "${checks[@]}")
elif [ "${EVAULT_REQUIRE_AUDIT_DB:-0}" = 1 ]; then
  echo "FAIL: $snapshot not found and EVAULT_REQUIRE_AUDIT_DB=1" >&2
  exit 1
else
  echo "SKIP: advisories not checked: $snapshot not found beside the checkout (set EVAULT_REQUIRE_AUDIT_DB=1 to make this fail)" >&2
fi

for manifest in Cargo.toml fuzz/Cargo.toml; do
  echo "-- $manifest: ${checks[*]}"
  # cargo-deny reads `cargo metadata` offline: the crates must be here.
  cargo fetch --locked --manifest-path "$manifest" >/dev/null
  # --offline: the advisory database is never fetched (the snapshot is it).
  cargo deny --manifest-path "$manifest" --config deny.toml --locked --offline \
    check --show-stats "${checks[@]}"
done
