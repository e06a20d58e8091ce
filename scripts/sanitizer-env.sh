# Sourced (from the repository root) by scripts/check.sh and by `make unit T=...` /
# `make blackbox K=...`: the sanitizer settings every test runs under, and the binary the
# black-box tests start. A sanitizer report fails the run with exit 86 (ASan, LSan) or at once
# (UBSan); tests/lsan.supp names the leaks of libraries we do not own. ASAN_OPTIONS already
# in the environment are kept, after ours, so they win.
export ASAN_OPTIONS="abort_on_error=0:halt_on_error=1:detect_leaks=1:exitcode=86${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export CALLPLANE_BIN="$PWD/build/asan/callplane"
