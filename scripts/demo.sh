#!/usr/bin/env bash
# The main job on the embedded default: a live two-node call center. Builds
# ariq, starts a local redis-server, the Asterisk simulator with two linked
# nodes (node1, node2) and one real queued per node, all on free loopback
# ports and the one Redis, then streams scripted callers and agents (with the
# agents' DTMF) into both nodes while tools/demo/ariq-demo prints what it
# observes: who waits where (one line per queue, across both nodes), what
# each caller hears, who is put through to whom and whether the call crosses
# nodes over a link call, what is recorded, how each call ends, and a summary.
# agentd (the control plane) runs too, with a generated token: the wallboard
# URL printed at the start shows the live call center in a browser.
#
#   scripts/demo.sh                   the scenario at a pace you can follow
#                                     (about 2.5 minutes), then the servers
#                                     stay up until Ctrl-C
#   scripts/demo.sh --once            exit after the scenario: 0 if all its
#                                     checks passed, 1 if not
#   scripts/demo.sh --fast            10x faster (about 15 s); --scale F for
#                                     any pace (1 = real time, 0.1 = --fast)
#   scripts/demo.sh --ari-walkthrough the older walkthrough without queued:
#                                     two calls driven through ariq's own ARI
#                                     client on a two-node simulator, narrated
#
# Installs what it needs (Debian packages) and builds ariq first, in build-demo/
# (ARIQ_DEMO_BUILD_DIR and ARIQ_DEMO_BUILD_TYPE, default RelWithDebInfo, change that).
set -euo pipefail
cd "$(dirname "$0")/.."

ONCE=0
SCALE=1
MODE=callcenter
while [ $# -gt 0 ]; do
  case "$1" in
    --once) ONCE=1 ;;
    --fast) SCALE=0.1 ;;
    --scale) SCALE="${2:?--scale needs a number}"; shift ;;
    --ari-walkthrough) MODE=walkthrough ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

scripts/deps.sh
BUILD=${ARIQ_DEMO_BUILD_DIR:-build-demo}
echo "== building ariq ($BUILD/) =="
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE="${ARIQ_DEMO_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
if [ "$MODE" = walkthrough ]; then
  TARGETS=(asterisk-sim scripted_call)
else
  TARGETS=(asterisk-sim queued agentd ariq-demo)
fi
BUILD_LOG=$(mktemp /tmp/ariq-demo-build.XXXXXX)
if ! cmake --build "$BUILD" -j 2 --target "${TARGETS[@]}" >"$BUILD_LOG" 2>&1; then
  # A compiler warning that only -O2 raises (-Werror) must not stop the
  # main job: show it, then build without optimization.
  grep -m 8 -E 'error|Error' "$BUILD_LOG" || tail -20 "$BUILD_LOG"
  [ -z "${ARIQ_DEMO_BUILD_TYPE:-}" ] || exit 1
  echo "demo.sh: the optimized build FAILED (above; please report it); building Debug in $BUILD-debug/"
  BUILD=$BUILD-debug
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$BUILD" -j 2 --target "${TARGETS[@]}" >"$BUILD_LOG" 2>&1 ||
    { tail -30 "$BUILD_LOG"; rm -f "$BUILD_LOG"; exit 1; }
fi
rm -f "$BUILD_LOG"

RUN=$(mktemp -d /tmp/ariq-demo.XXXXXX)
PIDS=()
KEEP_LOGS=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP_LOGS" = 1 ]; then echo "  logs kept in $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (bash's /dev/tcp: a refused connect means free),
# below the kernel's ephemeral range (32768 up), which outgoing connections
# and the tests' port-0 binds use; a start that still loses the race retries.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}

start_redis() {
  local pid
  for _ in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$RUN" --daemonize no >"$RUN/redis.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
      if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then PIDS+=($pid); return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "redis-server did not start:"; cat "$RUN/redis.log"
  exit 1
}

# start_sim NAME...: the simulator with those nodes on free ports (PORTS[i]),
# at $SCALE.
start_sim() {
  local pid args n
  for _ in 1 2 3 4 5; do
    args=(); PORTS=()
    for n in "$@"; do
      PORTS+=("$(free_port)")
      args+=(--node "$n:${PORTS[-1]}")
    done
    rm -f "$RUN/sim.ready"
    "$BUILD/tests/asterisk-sim/asterisk-sim" "${args[@]}" --scale "$SCALE" \
      --ready-file "$RUN/sim.ready" >"$RUN/sim.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      if [ -s "$RUN/sim.ready" ]; then PIDS+=($pid); return 0; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "the simulator did not start:"; cat "$RUN/sim.log"
  exit 1
}

# The ARI walkthrough of the platform issue: no queued, ariq's ARI client
# driving two calls itself (the app "queue" must be free for it).
walkthrough() {
  start_redis
  start_sim node1 node2
  P1=${PORTS[0]}; P2=${PORTS[1]}
  cat <<TXT

== running ==
  Redis                  127.0.0.1:$REDIS_PORT
  Asterisk node1 (sim)   http://127.0.0.1:$P1/ari   user ari, password ari
  Asterisk node2 (sim)   http://127.0.0.1:$P2/ari   linked to node1 (IAX2/node2/...)

== two calls through ariq's ARI client, step by step ==
TXT
  if ARIQ_LOG_LEVEL=warn "$BUILD/tests/integration/scripted_call/scripted_call" \
       --attach "$P1,$P2" --narrate --scale "$SCALE" >"$RUN/scenario.out" 2>&1; then
    grep -v '^\[' "$RUN/scenario.out"
    echo
    echo "  walkthrough passed: every step above was checked on the simulator's oracle"
  else
    cat "$RUN/scenario.out"
    echo "  walkthrough FAILED (simulator log: $RUN/sim.log)"
    KEEP_LOGS=1
    exit 1
  fi
}

# start_queued NODE PORT: queued for simulator node NODE (ARI on PORT), with
# the queues the scenario needs (ariq-demo --print-queues); its pid goes to
# QPID[NODE], its config and log to $RUN/queued-NODE.{conf,log}.
declare -A QPID
start_queued() {
  local node=$1 port=$2 pid
  export ARIQ_ARI_PASSWORD=ari
  {
    cat <<INI
; generated by scripts/demo.sh (dialplan/queued.conf.sample documents every key)
[general]
node_id = $node
ari_url = http://127.0.0.1:$port
ari_user = ari
ari_password = \${ARIQ_ARI_PASSWORD}
redis_url = redis://127.0.0.1:$REDIS_PORT/0
link_dial = IAX2/{node}/{pairing}@queue-link
time_scale = $SCALE
sweep_ms = 200
; the demo stops at once (a real node lets its calls finish, see the sample)
drain_timeout_s = 0

INI
    "$BUILD/tools/demo/ariq-demo" --print-queues
  } >"$RUN/queued-$node.conf"
  "$BUILD/queued/queued" -c "$RUN/queued-$node.conf" >"$RUN/queued-$node.log" 2>&1 &
  pid=$!
  QPID[$node]=$pid
  PIDS+=($pid)
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -u ari:ari \
          "http://127.0.0.1:$port/ari/applications/queue")" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "queued ($node) did not attach to the simulator:"; tail -20 "$RUN/queued-$node.log"
  KEEP_LOGS=1
  exit 1
}

# start_agentd: agentd on a free port with a generated token, on the same
# Redis; sets WALLBOARD (its URL, token in the fragment) or leaves it empty
# (with a warning) if it does not come up: the scenario does not need it.
WALLBOARD=
AGENTD_LINE="not running"
start_agentd() {
  local pid port tok
  tok=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  for _ in 1 2 3; do
    port=$(free_port)
    cat >"$RUN/agentd.conf" <<INI
; generated by scripts/demo.sh (agentd/agentd.conf.sample documents every key)
[general]
listen = 127.0.0.1
port = $port
tokens = \${ARIQ_AGENTD_TOKENS}
redis_url = redis://127.0.0.1:$REDIS_PORT/0
time_scale = $SCALE
INI
    ARIQ_AGENTD_TOKENS=$tok "$BUILD/agentd/agentd" -c "$RUN/agentd.conf" \
      >"$RUN/agentd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
      if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
              "http://127.0.0.1:$port/api/v1/health")" = 200 ]; then
        PIDS+=($pid)
        WALLBOARD="http://127.0.0.1:$port/wallboard#token=$tok"
        AGENTD_LINE="http://127.0.0.1:$port/api/v1/  pid $pid, Authorization: Bearer $tok"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "demo.sh: agentd did not start (no wallboard this time):"; tail -5 "$RUN/agentd.log"
}

callcenter() {
  start_redis
  start_sim node1 node2
  P1=${PORTS[0]}; P2=${PORTS[1]}
  start_queued node1 "$P1"
  start_queued node2 "$P2"
  start_agentd
  if [ -n "$WALLBOARD" ]; then
    cat <<TXT

== watch it live: open the wallboard in a browser ==
  $WALLBOARD
TXT
  fi
  cat <<TXT

== running ==
  Redis                  127.0.0.1:$REDIS_PORT   (redis-cli -p $REDIS_PORT)
  Asterisk node1 (sim)   http://127.0.0.1:$P1/ari   user ari, password ari
  Asterisk node2 (sim)   http://127.0.0.1:$P2/ari   linked to node1 (IAX2/node1, IAX2/node2)
  queued node1           pid ${QPID[node1]}, config $RUN/queued-node1.conf
  queued node2           pid ${QPID[node2]}, config $RUN/queued-node2.conf
  agentd                 ${AGENTD_LINE}
  logs                   $RUN  (queued-NODE.log: a line per call milestone; log_level = debug for every state change)
  time scale             $SCALE (1 = real time)

TXT
  if "$BUILD/tools/demo/ariq-demo" --sim "http://127.0.0.1:$P1" \
       --redis "127.0.0.1:$REDIS_PORT" --scale "$SCALE"; then
    echo
    echo "  scenario passed: every check above was made on the simulator's oracle and Redis"
  else
    echo
    for n in node1 node2; do
      echo "  scenario FAILED; queued $n's last lines:"
      tail -20 "$RUN/queued-$n.log"
    done
    KEEP_LOGS=1
    exit 1
  fi
  if [ "$ONCE" = 0 ]; then
    cat <<TXT

  Look around while it runs (the servers stay up):
    ${WALLBOARD:-(no wallboard: agentd did not start)}
                                                  # the wallboard, in a browser
    redis-cli -p $REDIS_PORT XRANGE '{ariq}:events' - +       # every queue event
    curl -s http://127.0.0.1:$P1/sim/channels/carol           # what Carol heard, in order
    curl -s http://127.0.0.1:$P1/sim/recordings               # the recordings (both nodes)
    curl -s -X POST http://127.0.0.1:$P1/sim/calls -H 'Content-Type: application/json' \\
      -d '{"app":"queue","args":"caller,support","caller_number":"5550000","node":"node2"}'
                                                  # call in yourself (on node2)
TXT
  fi
}

if [ "$MODE" = walkthrough ]; then walkthrough; else callcenter; fi
echo
if [ "$ONCE" = 1 ]; then exit 0; fi
echo "Servers stay up for you to explore; Ctrl-C stops them."
wait
