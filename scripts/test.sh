#!/usr/bin/env bash
# Runs every ariq test: the normal build, the same suite under ASan + UBSan,
# and a bounded libFuzzer run of each fuzz target. Installs what it needs.
#   scripts/test.sh            everything (what CI runs)
#   ARIQ_FAST=1 scripts/test.sh  normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

JOBS=$(nproc 2>/dev/null || echo 2)
FUZZ_SECONDS=${ARIQ_FUZZ_SECONDS:-30}

run_suite() { # dir, build type, extra cmake args...
  local dir=$1 type=$2; shift 2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  # bench is built but not run here: `ctest -L bench` prints the figures.
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" -LE bench --timeout 300)
}

# -O2 first: it is how the daemons ship, and gcc finds more at -O2.
echo "== build and test (gcc -O2, -Werror) =="
run_suite build-test RelWithDebInfo

if [ "${ARIQ_FAST:-0}" != 1 ]; then
  echo "== build and test under ASan + UBSan =="
  ASAN_OPTIONS=detect_leaks=1 run_suite build-asan Debug -DARIQ_ASAN=ON -DARIQ_UBSAN=ON

  if [ -x .ci/fuzz.sh ]; then
    echo "== fuzz (${FUZZ_SECONDS}s per target) =="
    ARIQ_FUZZ_SECONDS=$FUZZ_SECONDS .ci/fuzz.sh
  fi
fi
echo "scripts/test.sh: all passed"
