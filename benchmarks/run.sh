#!/usr/bin/env bash
# benchmarks/run.sh — measure ccauthz against the protocol's ceiling on this
# machine, in one run: the no-op ext_authz server (benchmarks/noop) and ccauthz
# get the same load from benchmarks/load, alternating ROUNDS times, and the
# script prints each run and the medians with the ratio ccauthz / no-op.
#
#   MIX=realistic benchmarks/run.sh        # a named workload: cloud (default), single,
#                                          # realistic, adversarial (benchmarks/README.md)
#   benchmarks/run.sh                      # defaults below
#   ROUNDS=5 DURATION=20s benchmarks/run.sh
#   TARGET=127.0.0.1:9192 TARGET_PID=1234 benchmarks/run.sh   # any other ext_authz server
#   CCAUTHZ_BIN=/path/to/other/ccauthz benchmarks/run.sh     # another ccauthz build, same harness
#   PROFILE=/tmp/ccauthz.pprof benchmarks/run.sh           # also a CPU profile of ccauthz (last round)
#
# With TARGET set, that server is measured instead of ccauthz (it must trust
# the issuer key in $WORK/issuer.pem, printed at start, or run with CHECK=false).
set -euo pipefail
cd "$(dirname "$0")/.."

MIX=${MIX:-cloud}
# Per-mix defaults (each can still be overridden).
case "$MIX" in
  cloud) ;;
  single) : "${TOKENS:=1}" "${DENY_PERCENT:=0}" "${REQUESTS:=1}" ;;
  realistic) : "${TOKENS:=500}" "${DENY_PERCENT:=15}" "${REQUESTS:=200000}" "${WARMUP:=10s}" ;;
  adversarial) : "${DENY_PERCENT:=100}" "${REQUESTS:=50000}" ;;
  *) echo "MIX=$MIX: want cloud, single, realistic or adversarial" >&2; exit 2 ;;
esac
REQUESTS=${REQUESTS:-20000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONCURRENCY=${CONCURRENCY:-32}
CONNS=${CONNS:-2}
TOKENS=${TOKENS:-1000}
DENY_PERCENT=${DENY_PERCENT:-10}
CHECK=${CHECK:-true}
TARGET=${TARGET:-}
TARGET_PID=${TARGET_PID:-}
# Decision-cache entries for ccauthz (0: its default, 10000). The mix has about
# TOKENS x 5 users x 6 request shapes distinct decisions.
DECISION_CACHE=${DECISION_CACHE:-0}

# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
echo "== building (ccauthz, noop, load)"
bench_setup
go build -o "$WORK/noop" ./benchmarks/noop

NOOP_PORT=$("$WORK/load" -free-port)
"$WORK/noop" -addr "127.0.0.1:$NOOP_PORT" >"$WORK/noop.log" 2>&1 &
NOOP_PID=$!
pids+=("$NOOP_PID")

if [ -z "$TARGET" ]; then
  start_ccauthz "$DECISION_CACHE"
  TARGET=127.0.0.1:$GRPC_PORT
  TARGET_PID=$CCAUTHZ_PID
fi

common=(-mix "$MIX" -requests "$REQUESTS" -key "$WORK/issuer.pem" -issuer "$ISSUER" -tokens "$TOKENS" -deny-percent "$DENY_PERCENT"
  -duration "$DURATION" -warmup "$WARMUP" -concurrency "$CONCURRENCY" -conns "$CONNS" -json)

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "== load: mix $MIX, $DURATION per run after $WARMUP warm-up, concurrency $CONCURRENCY over $CONNS connections, $TOKENS tokens, $REQUESTS requests, $DENY_PERCENT% denied"
: >"$WORK/results.jsonl"
# seconds DURATION: a Go duration in whole seconds ("10s") as an integer.
seconds() {
  case "$1" in
    *[0-9]s) echo "${1%s}" ;;
    *) echo "$1: PROFILE needs DURATION and WARMUP in seconds, such as 10s" >&2; return 1 ;;
  esac
}
if [ -n "${PROFILE:-}" ]; then
  [ -n "${ADMIN_PORT:-}" ] || { echo "PROFILE profiles the ccauthz this script starts; unset TARGET" >&2; exit 2; }
  prof_wait=$(seconds "$WARMUP")
  prof_secs=$(( $(seconds "$DURATION") - 1 ))
  [ "$prof_secs" -ge 1 ] || { echo "PROFILE needs DURATION of 2s or more" >&2; exit 2; }
fi
for round in $(seq 1 "$ROUNDS"); do
  "$WORK/load" "${common[@]}" -label noop -target "127.0.0.1:$NOOP_PORT" -target-pid "$NOOP_PID" -check=false | tee -a "$WORK/results.jsonl"
  prof_pid=
  if [ -n "${PROFILE:-}" ] && [ "$round" = "$ROUNDS" ]; then
    # The measured part of the last ccauthz run (after its warm-up), over
    # the admin listener's /debug/pprof/ (admin_server.pprof).
    (sleep "$prof_wait"; curl -fsS -o "$PROFILE" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$prof_secs") &
    prof_pid=$!
  fi
  "$WORK/load" "${common[@]}" -label ccauthz -target "$TARGET" ${TARGET_PID:+-target-pid "$TARGET_PID"} -check="$CHECK" \
    ${ADMIN_PORT:+-metrics-url "http://127.0.0.1:$ADMIN_PORT/metrics"} | tee -a "$WORK/results.jsonl"
  if [ -n "$prof_pid" ]; then
    wait "$prof_pid" && echo "== CPU profile of ccauthz: $PROFILE (go tool pprof -top $PROFILE)"
  fi
done
"$WORK/load" -summarize "$WORK/results.jsonl" -baseline noop
