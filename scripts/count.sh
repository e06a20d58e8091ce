# Sourced by scripts/check.sh and scripts/tsan.sh: adds what one test log reports to the
# running totals $passed and $failed, so every runner counts the same way.

# count_unit LOG RC BIN: a cmocka binary's log and exit code; a binary that failed without
# cmocka's FAILED line (a sanitizer report, a crash) counts as one failure.
count_unit() {
  local p f
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ "$2" -ne 0 ] && [ -z "$f" ]; then
    echo "unit test binary $3 exited with $2"; failed=$((failed + 1))
  fi
}

# count_pytest LOG: pytest's summary line; errors count as failures, no summary as one.
count_pytest() {
  local line p f e
  line=$(grep -E '^[=]* ?[0-9]+ (passed|failed)|^[0-9]+ (passed|failed)| (passed|failed)( |,)' "$1" | tail -n1)
  p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
  f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
  e=$(echo "$line" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
  if [ -z "$p$f$e" ]; then echo "pytest produced no summary"; failed=$((failed + 1)); fi
}
