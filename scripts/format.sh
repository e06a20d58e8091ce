#!/usr/bin/env bash
# The C sources' layout, by clang-format and the style file .clang-format at the root:
# `format.sh fix` rewrites every file in place, `format.sh check` lists the files whose layout
# differs and fails when any does (make check runs it). Tables whose rows are easier to read
# as written stand between /* clang-format off */ and /* clang-format on */.
set -uo pipefail
cd "$(dirname "$0")/.."

files=$(find src tests/unit fuzz -path fuzz/corpus -prune -o -name '*.[ch]' -print | sort)
case "${1:-check}" in
  fix)
    echo "$files" | xargs clang-format -i ;;
  check)
    bad=0
    for f in $files; do
      if ! clang-format "$f" | cmp -s - "$f"; then
        echo "format: $f differs from clang-format's layout (scripts/format.sh fix)"
        bad=$((bad + 1))
      fi
    done
    [ "$bad" -eq 0 ] && echo "format: $(echo "$files" | wc -l) files as clang-format lays them out"
    [ "$bad" -eq 0 ] ;;
  *) echo "usage: $0 check|fix" >&2; exit 2 ;;
esac
