#!/usr/bin/env bash
# Lints docs/openapi.json with Redocly CLI (scripts/lint/: its package.json and lock file, its
# rules in redocly.yaml). Installs the lock file's packages with `npm ci` when node_modules is
# missing or was installed from another lock file. Extra arguments go to `redocly lint`.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=scripts/lint
stamp=$dir/node_modules/.callplane-lock.sha256
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$dir/node_modules/.bin/redocly" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "lint-openapi: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" >"$stamp"
fi

# no usage reports and no update checks: the lint talks to nobody
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec "$dir/node_modules/.bin/redocly" lint --config "$dir/redocly.yaml" "$@" docs/openapi.json
