#!/usr/bin/env bash
# The main job on the embedded default: a local Redis and a two-node simulated
# Asterisk on free loopback ports, and one call driven through ariq's ARI
# client and event stream while it narrates what the caller hears.
#   scripts/demo.sh            run the scenario, then keep the servers up (Ctrl-C)
#   scripts/demo.sh --once     exit after the scenario
# Installs what it needs (Debian packages) and builds ariq first.
set -euo pipefail
cd "$(dirname "$0")/.."
ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1

scripts/deps.sh
echo "== building ariq =="
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-demo -j "$(nproc 2>/dev/null || echo 2)" --target asterisk-sim scripted_call >/dev/null

RUN=$(mktemp -d /tmp/ariq-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (bash's /dev/tcp: a refused connect means free).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$RUN" --daemonize no >"$RUN/redis.log" 2>&1 &
PIDS+=($!)

P1=$(free_port); P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
build-demo/tests/asterisk-sim/asterisk-sim --node "node1:$P1" --node "node2:$P2" \
  --scale 1 --ready-file "$RUN/sim.ready" >"$RUN/sim.log" 2>&1 &
PIDS+=($!)

for _ in $(seq 1 100); do
  [ -s "$RUN/sim.ready" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
[ -s "$RUN/sim.ready" ] || { echo "the simulator did not start:"; cat "$RUN/sim.log"; exit 1; }

cat <<TXT

== running ==
  Redis                  127.0.0.1:$REDIS_PORT   ($(redis-cli -p "$REDIS_PORT" ping))
  Asterisk node1 (sim)   http://127.0.0.1:$P1/ari   user ari, password ari
  Asterisk node2 (sim)   http://127.0.0.1:$P2/ari   linked to node1 (IAX2/node2/...)
  logs                   $RUN

  Look around while it runs:
    curl -s -u ari:ari http://127.0.0.1:$P1/ari/channels
    curl -s http://127.0.0.1:$P1/sim/channels        # the oracle: what each channel heard

== one call, step by step (real time) ==
TXT
if ARIQ_LOG_LEVEL=warn build-demo/tests/integration/scripted_call/scripted_call \
     --attach "$P1,$P2" --narrate --scale 1 >"$RUN/scenario.out" 2>&1; then
  grep -v '^\[' "$RUN/scenario.out"
  echo
  echo "  scenario passed: every step above was checked on the simulator's oracle"
else
  cat "$RUN/scenario.out"
  echo "  scenario FAILED (simulator log: $RUN/sim.log)"
  exit 1
fi
echo
if [ "$ONCE" = 1 ]; then exit 0; fi
echo "Servers stay up for you to explore; Ctrl-C stops them."
wait
