#!/usr/bin/env bash
# `make check`: every test, against the sanitizer build (build/asan). Unit tests (cmocka) first,
# then each fuzz target's corpus replayed (build/fuzz, clang), then the lint of docs/openapi.json
# (Redocly CLI from npm), then the black-box suite (pytest) that starts the real binary, sipp peers and receivers.
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/sanitizer-env.sh

passed=0; failed=0
log=$(mktemp)

for t in build/asan/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  cat "$log"
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
    echo "unit test binary $t exited with $rc"; failed=$((failed + 1))
  fi
done

# every fuzz target over its corpus (fuzz/corpus/): each crash once found stays fixed
if compgen -G "build/fuzz/fuzz_*" >/dev/null; then
  scripts/fuzz.sh replay >"$log" 2>&1
  cat "$log"
  p=$(grep -cE '^fuzz_[a-z_]+: [0-9]+ executions' "$log")
  f=$(grep -cE '^fuzz_[a-z_]+: FAILED' "$log")
  passed=$((passed + p)); failed=$((failed + f))
fi

# the API's description (docs/openapi.json) through Redocly CLI's lint: one check
if scripts/lint-openapi.sh >"$log" 2>&1; then
  passed=$((passed + 1)); echo "lint-openapi: passed"
else
  cat "$log"; failed=$((failed + 1)); echo "lint-openapi: FAILED"
fi

if [ -d tests/blackbox ]; then
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/blackbox 2>&1 | tee "$log"
  line=$(grep -E '^[=]* ?[0-9]+ (passed|failed)|^[0-9]+ (passed|failed)| (passed|failed)( |,)' "$log" | tail -n1)
  p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
  f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
  e=$(echo "$line" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
  if [ -z "$p$f$e" ]; then echo "pytest produced no summary"; failed=$((failed + 1)); fi
fi
rm -f "$log"

echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
