#!/usr/bin/env bash
# `make tsan`: the unit tests and the black-box tests that drive every thread at once (HTTP
# pool, SIP thread, media thread, webhook worker, event hub, recording writer), against the
# ThreadSanitizer build (build/tsan). Ends with one line: "N passed, N failed", after the time
# taken.
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
  tests/blackbox/test_recordings.py
  tests/blackbox/test_drain.py
)

# Tests whose assertions depend on the server's speed: a goodbye's wall-clock bounds (took
# < 1 s, a BYE within 0.8..1.6 s, the audio queued 0.1 s after it was sent), a ringing state
# that lasts only between the far end's 180 and its 404, a duration of exactly 1 s for a BYE
# sent 1.2 s after the answer. True of the optimised and ASan builds, not of a server TSan
# slows five to fifteen times on a loaded machine: they failed there on those values, with no
# report. The same paths (goodbyes, joined ends, a bulk end cutting a goodbye, remote BYEs,
# failed dials) still run under TSan through the tests kept.
DESELECT=(
  "tests/blackbox/test_goodbye.py::test_after_playout_plays_the_queued_tone_then_byes"
  "tests/blackbox/test_goodbye.py::test_max_wait_ms_cuts_a_long_queue"
  "tests/blackbox/test_goodbye.py::test_goodbye_of_an_unanswered_call_cancels_at_once"
  "tests/blackbox/test_goodbye.py::test_second_end_during_a_goodbye_joins_it"
  "tests/blackbox/test_goodbye.py::test_bulk_end_during_a_goodbye_ends_at_once"
  "tests/blackbox/test_sip.py::test_outbound_final_response_maps_to_status[404-Not Found-failed-failed]"
  "tests/blackbox/test_sip.py::test_remote_bye_completes_call"
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
  "${DESELECT[@]/#/--deselect=}" \
  ${TSAN_K:+-k "$TSAN_K"} 2>&1 | tee "$log"
count_pytest "$log"
rm -f "$log"

echo "tsan: $(( $(date +%s) - start )) s"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
