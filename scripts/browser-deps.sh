#!/usr/bin/env bash
# The npm packages of the browser tests (tests/browser: playwright-core, which drives Debian's
# chromium from scripts/deps.sh's test list), installed from the lock file with `npm ci` when
# node_modules is missing or was installed from another lock file. Nothing downloads a
# browser: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1, and the tests point playwright at
# /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=tests/browser
stamp=$dir/node_modules/.callplane-lock.sha256
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ -d "$dir/node_modules/playwright-core" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "browser-deps: npm ci in $dir" >&2
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$stamp"
