#!/usr/bin/env bash
# The fuzz targets of fuzz/ (libFuzzer, built by `make fuzz-build` into build/fuzz/).
#
#   scripts/fuzz.sh run [TARGET...]     each target for FUZZ_SECONDS (default 60) on all cores'
#                                       worth of jobs (FUZZ_JOBS, default 1); what it finds
#                                       that covers new code is merged into fuzz/corpus/TARGET;
#                                       a crash stops the run and is kept in build/fuzz/crash-*
#                                       (with fuzz/TARGET.dict as its dictionary, if there is one)
#   scripts/fuzz.sh replay [TARGET...]  every input of fuzz/corpus/TARGET once (make check):
#                                       each crash once found, and added there, stays fixed
#
# Ends with one line per target: executions, executions/s, coverage (libFuzzer's "cov").
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"

status=0
summary=()
for t in "${targets[@]}"; do
  bin=build/fuzz/$t
  corpus=fuzz/corpus/$t
  [ -x "$bin" ] || { echo "no $bin: run make fuzz-build" >&2; exit 2; }
  mkdir -p "$corpus"
  log=$(mktemp)
  case "$mode" in
    replay)
      "$bin" -runs=0 "$corpus" >"$log" 2>&1; rc=$?
      ;;
    run)
      new=$(mktemp -d)
      dict=()
      [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
      "$bin" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" \
        -print_final_stats=1 -artifact_prefix=build/fuzz/ "$new" "$corpus" >"$log" 2>&1; rc=$?
      # keep only what adds coverage to the committed corpus
      "$bin" -merge=1 "$corpus" "$new" >/dev/null 2>&1
      rm -rf "$new"
      ;;
    *) echo "usage: $0 run|replay [TARGET...]" >&2; exit 2 ;;
  esac
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+')
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -n 40 "$log"
    summary+=("$t: FAILED (exit $rc) after ${execs:-?} executions")
  else
    summary+=("$t: ${execs:-0} executions${rate:+, $rate/s}, cov ${cov:-?}")
  fi
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
exit $status
