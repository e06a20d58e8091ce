#!/usr/bin/env bash
# `make tsan`: the unit tests and the black-box tests that drive every thread at once (HTTP
# pool, SIP thread, media thread, webhook worker, event hub), against the ThreadSanitizer build
# (build/tsan). Ends with one line: "N passed, N failed", after the time taken.
# TSAN_K narrows the black-box tests as pytest's -k does.
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/tsan-env.sh
. scripts/count.sh

# The black-box files whose tests run calls, ends, media, webhooks and event streams at the
# same time; the rest of the suite drives one thread at a time and would add time, not races.
BLACKBOX=(
  tests/blackbox/test_events.py
  tests/blackbox/test_webhook_fairness.py
  tests/blackbox/test_goodbye.py
  tests/blackbox/test_media.py
  tests/blackbox/test_sip.py
)

start=$(date +%s)
passed=0; failed=0
log=$(mktemp)

for t in build/tsan/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  # a clean binary is one line; a failing one shows its whole log (the report)
  if [ "$rc" -eq 0 ]; then echo "$t: passed"; else cat "$log"; fi
  count_unit "$log" "$rc" "$t"
done

/usr/bin/python3 -m pytest -q -p no:cacheprovider "${BLACKBOX[@]}" \
  ${TSAN_K:+-k "$TSAN_K"} 2>&1 | tee "$log"
count_pytest "$log"
rm -f "$log"

echo "tsan: $(( $(date +%s) - start )) s"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
