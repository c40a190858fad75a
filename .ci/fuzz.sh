#!/bin/sh
# Builds the ari_event libFuzzer target with clang (-DARIQ_FUZZ=ON) in its own
# build directory and fuzzes it for a bounded time on a copy of the seed
# corpus (the committed corpus is never modified). Exits non-zero on a crash,
# a leak or a sanitizer report; the reproducer is left in the work dir.
#
#   .ci/fuzz.sh [SECONDS]          default 30
#   env: BUILD_DIR (default <repo>/build-events-fuzz), JOBS (default 2)
set -eu

SECONDS_TO_RUN=${1:-30}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build-events-fuzz}
JOBS=${JOBS:-2}
SRC=$REPO/tests/fuzz/ari_event

# ASan comes with ARIQ_FUZZ; UBSan is added so undefined behaviour aborts too.
CC=clang cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug -DARIQ_FUZZ=ON \
    -DARIQ_UBSAN=ON >/dev/null
make -C "$BUILD_DIR" -j"$JOBS" fuzz_ari_event

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_ari_event.XXXXXX")
mkdir -p "$WORK/corpus"
cp "$SRC"/corpus/* "$WORK/corpus/"

echo "fuzzing ari_event_parse for ${SECONDS_TO_RUN}s in $WORK"
cd "$WORK"
if "$BUILD_DIR/tests/fuzz/ari_event/fuzz_ari_event" \
        -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -dict="$SRC/ari_event.dict" \
        -artifact_prefix="$WORK/" "$WORK/corpus"; then
    echo "fuzz: no crash in ${SECONDS_TO_RUN}s ($(ls "$WORK/corpus" | wc -l) corpus inputs)"
    rm -rf "$WORK"
    exit 0
fi
echo "fuzz: FAILED; reproducers in $WORK:" >&2
ls "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* "$WORK"/oom-* 2>/dev/null >&2 || true
exit 1
