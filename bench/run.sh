#!/usr/bin/env bash
# `make bench`: the benchmarks of bench/bench.py against build/callplane (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
