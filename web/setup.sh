#!/usr/bin/env bash
# Prepares web/ for `npm run check` and `npm test` (and the browser tests):
# the system Chromium and the pinned npm dev dependencies. Never downloads a
# browser: playwright-core drives /usr/bin/chromium.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

cd "$(dirname "$0")"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund
