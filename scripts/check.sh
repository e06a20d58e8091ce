#!/usr/bin/env bash
# `make check`: every test, against the sanitizer build (build/asan). Unit tests (cmocka) first,
# then each fuzz target's corpus replayed (build/fuzz, clang), then the C sources' layout
# (clang-format, scripts/format.sh), then the lint of docs/openapi.json (Redocly CLI from npm),
# then the black-box suite (pytest) that starts the real binary, sipp peers and receivers.
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/sanitizer-env.sh
. scripts/count.sh

passed=0; failed=0
log=$(mktemp)

for t in build/asan/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  cat "$log"
  count_unit "$log" "$rc" "$t"
done

# every fuzz target over its corpus (fuzz/corpus/): each crash once found stays fixed
if compgen -G "build/fuzz/fuzz_*" >/dev/null; then
  scripts/fuzz.sh replay >"$log" 2>&1
  cat "$log"
  p=$(grep -cE '^fuzz_[a-z_]+: [0-9]+ executions' "$log")
  f=$(grep -cE '^fuzz_[a-z_]+: FAILED' "$log")
  passed=$((passed + p)); failed=$((failed + f))
fi

# the C sources' layout (.clang-format): one check
if scripts/format.sh check >"$log" 2>&1; then
  passed=$((passed + 1)); tail -1 "$log"
else
  cat "$log"; failed=$((failed + 1)); echo "format-check: FAILED"
fi

# the API's description (docs/openapi.json) through Redocly CLI's lint: one check
if scripts/lint-openapi.sh >"$log" 2>&1; then
  passed=$((passed + 1)); echo "lint-openapi: passed"
else
  cat "$log"; failed=$((failed + 1)); echo "lint-openapi: FAILED"
fi

if [ -d tests/blackbox ]; then
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/blackbox 2>&1 | tee "$log"
  count_pytest "$log"
fi
rm -f "$log"

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
