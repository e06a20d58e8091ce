#!/usr/bin/env bash
# Installs the npm packages the black-box tests run (tests/blackbox/node: the Standard Webhooks
# verifier) from their lock file, when they are missing or the lock file changed since.
# Needs node and npm (scripts/deps.sh test installs them).
set -euo pipefail
cd "$(dirname "$0")/../tests/blackbox/node"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
