#!/usr/bin/env bash
# Runs the browser test: installs playwright-core (no browser download; Debian's Chromium is used)
# and builds the binary the test starts.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi
(cd ../.. && cargo build --bin mqtt-supervisor)
node --test topic-patterns.test.mjs devices.test.mjs
