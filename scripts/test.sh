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
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" -LE bench --timeout 300) | tee "$dir/ctest.out"
  local n
  n=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$dir/ctest.out")
  PASSED=$((PASSED + ${n:-0}))
}
PASSED=0

# -O2 first: it is how the daemons ship, and gcc finds more at -O2.
echo "== build and test (gcc -O2, -Werror) =="
run_suite build-test RelWithDebInfo

if [ "${ARIQ_FAST:-0}" != 1 ]; then
  echo "== build and test under ASan + UBSan =="
  ASAN_OPTIONS=detect_leaks=1 run_suite build-asan Debug -DARIQ_ASAN=ON -DARIQ_UBSAN=ON

  echo "== fuzz: ari_event ${FUZZ_SECONDS}s, every other parser 10s =="
  export BUILD_DIR=$PWD/build-fuzz
  .ci/fuzz.sh "$FUZZ_SECONDS" ari_event
  others=$(for d in tests/fuzz/*/; do n=$(basename "$d"); [ "$n" != ari_event ] && [ -d "$d/corpus" ] && echo "$n"; done; true)
  # shellcheck disable=SC2086
  .ci/fuzz.sh 10 $others
fi
echo "scripts/test.sh: every suite and fuzz target passed"
echo "ariq: $PASSED passed, 0 failed"
