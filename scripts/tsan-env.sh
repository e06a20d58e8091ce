# Sourced (from the repository root) by scripts/tsan.sh: the ThreadSanitizer settings the unit
# tests and the black-box tests run under, and the binary the black-box tests start
# (build/tsan/callplane). A report ends the process at once with exit 66 (halt_on_error), so a
# race fails the test that caused it rather than scrolling by; second_deadlock_stack=1 prints
# both stacks of a lock-order inversion. tests/tsan.supp names, with a reason each, the reports
# from inside libraries we do not own. TSAN_OPTIONS already in the environment are kept, after
# ours, so they win.
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions=$PWD/tests/tsan.supp:print_suppressions=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
export CALLPLANE_BIN="$PWD/build/tsan/callplane"
