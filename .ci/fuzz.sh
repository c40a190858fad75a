#!/bin/sh
# Builds the libFuzzer targets with clang (-DARIQ_FUZZ=ON, plus UBSan) in
# their own build directory and fuzzes each for a bounded time on a copy of
# its seed corpus (the committed corpora are never modified). Exits non-zero
# if any target crashed, leaked or tripped a sanitizer; the reproducers are
# left in the work directory it prints.
#
#   .ci/fuzz.sh [SECONDS] [NAME...]     default 30 s each, every target
#
# A target NAME is tests/fuzz/NAME/ with corpus/ (built as fuzz_NAME by
# ariq_add_fuzz); tests/fuzz/NAME/NAME.dict is used as its dictionary if
# present. env: BUILD_DIR (default <repo>/build-events-fuzz), JOBS (default 2)
set -eu

SECONDS_TO_RUN=${1:-30}
[ $# -gt 0 ] && shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build-events-fuzz}
JOBS=${JOBS:-2}

if [ $# -gt 0 ]; then
    NAMES="$*"
else
    NAMES=$(for d in "$REPO"/tests/fuzz/*/; do
        [ -d "$d/corpus" ] && basename "$d"
    done)
fi

# ASan comes with ARIQ_FUZZ; UBSan is added so undefined behaviour aborts too.
CC=clang cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug -DARIQ_FUZZ=ON \
    -DARIQ_UBSAN=ON >/dev/null
TARGETS=""
for n in $NAMES; do TARGETS="$TARGETS fuzz_$n"; done
make -C "$BUILD_DIR" -j"$JOBS" $TARGETS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ariq_fuzz.XXXXXX")
FAILED=""
for n in $NAMES; do
    SRC=$REPO/tests/fuzz/$n
    BIN=$(find "$BUILD_DIR/tests/fuzz" -type f -name "fuzz_$n" | head -n 1)
    mkdir -p "$WORK/$n/corpus"
    cp "$SRC"/corpus/* "$WORK/$n/corpus/"
    DICT=""
    [ -f "$SRC/$n.dict" ] && DICT="-dict=$SRC/$n.dict"
    echo "== fuzz_$n for ${SECONDS_TO_RUN}s in $WORK/$n"
    if (cd "$WORK/$n" && "$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 \
            -timeout=10 -rss_limit_mb=2048 $DICT -artifact_prefix="$WORK/$n/" \
            "$WORK/$n/corpus"); then
        echo "== fuzz_$n: no crash in ${SECONDS_TO_RUN}s"
    else
        echo "== fuzz_$n: FAILED, reproducers in $WORK/$n" >&2
        FAILED="$FAILED $n"
    fi
done

if [ -n "$FAILED" ]; then
    echo "fuzz: FAILED:$FAILED (see $WORK)" >&2
    exit 1
fi
echo "fuzz: all passed:" $NAMES
rm -rf "$WORK"
