#!/usr/bin/env bash
# benchmarks/run.sh — measure ccauthz against the protocol's ceiling on this
# machine, in one run: the no-op ext_authz server (benchmarks/noop) and ccauthz
# get the same load from benchmarks/load, alternating ROUNDS times, and the
# script prints each run and the medians with the ratio ccauthz / no-op.
#
#   benchmarks/run.sh                      # defaults below
#   ROUNDS=5 DURATION=20s benchmarks/run.sh
#   TARGET=127.0.0.1:9192 TARGET_PID=1234 benchmarks/run.sh   # any other ext_authz server
#
# With TARGET set, that server is measured instead of ccauthz (it must trust
# the issuer key in $WORK/issuer.pem, printed at start, or run with CHECK=false).
set -euo pipefail
cd "$(dirname "$0")/.."

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

WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building (ccauthz, noop, load)"
go build -o "$WORK/ccauthz" ./cmd/ccauthz
go build -o "$WORK/noop" ./benchmarks/noop
go build -o "$WORK/load" ./benchmarks/load

# An issuer the load generator mints tokens with, trusted by ccauthz as a file issuer.
"$WORK/ccauthz" keys generate --out "$WORK/issuer.pem" >/dev/null
"$WORK/ccauthz" keys jwks --key "$WORK/issuer.pem" >"$WORK/issuer.jwks.json"
ISSUER=https://bench-issuer.invalid

NOOP_PORT=$("$WORK/load" -free-port)
"$WORK/noop" -addr "127.0.0.1:$NOOP_PORT" >"$WORK/noop.log" 2>&1 &
NOOP_PID=$!
pids+=("$NOOP_PID")

if [ -z "$TARGET" ]; then
  GRPC_PORT=$("$WORK/load" -free-port)
  ADMIN_PORT=$("$WORK/load" -free-port)
  cat >"$WORK/config.yaml" <<EOF
listeners:
  grpc: 127.0.0.1:$GRPC_PORT
  admin: 127.0.0.1:$ADMIN_PORT
catalog: embedded:example
backends:
  - name: ai_gateway
    manifest: embedded:ai_gateway
    issuers: [bench]
issuers:
  - name: bench
    issuer: $ISSUER
    jwks_file: $WORK/issuer.jwks.json
    kind: instance
caches:
  decisions: $DECISION_CACHE
logging:
  level: warn
  allow_sample_rate: 0
EOF
  "$WORK/ccauthz" serve --config "$WORK/config.yaml" >"$WORK/ccauthz.log" 2>&1 &
  TARGET_PID=$!
  pids+=("$TARGET_PID")
  TARGET=127.0.0.1:$GRPC_PORT
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || { cat "$WORK/ccauthz.log"; exit 1; }
fi

common=(-key "$WORK/issuer.pem" -issuer "$ISSUER" -tokens "$TOKENS" -deny-percent "$DENY_PERCENT"
  -duration "$DURATION" -warmup "$WARMUP" -concurrency "$CONCURRENCY" -conns "$CONNS" -json)

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
echo "== load: $DURATION per run after $WARMUP warm-up, concurrency $CONCURRENCY over $CONNS connections, $TOKENS tokens, $DENY_PERCENT% denied"
: >"$WORK/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  "$WORK/load" "${common[@]}" -label noop -target "127.0.0.1:$NOOP_PORT" -target-pid "$NOOP_PID" -check=false | tee -a "$WORK/results.jsonl"
  "$WORK/load" "${common[@]}" -label ccauthz -target "$TARGET" ${TARGET_PID:+-target-pid "$TARGET_PID"} -check="$CHECK" | tee -a "$WORK/results.jsonl"
done
"$WORK/load" -summarize "$WORK/results.jsonl" -baseline noop
