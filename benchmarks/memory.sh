#!/usr/bin/env bash
# benchmarks/memory.sh — the memory test: TOKENS (default 100k) distinct live
# tokens, each presented once through a real ccauthz process, then its peak
# and current RSS and its cache sizes (from /metrics).
#
#   benchmarks/memory.sh
#   TOKENS=20000 benchmarks/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENS=${TOKENS:-100000}
CONCURRENCY=${CONCURRENCY:-16}

WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

go build -o "$WORK/ccauthz" ./cmd/ccauthz
go build -o "$WORK/load" ./benchmarks/load
"$WORK/ccauthz" keys generate --out "$WORK/issuer.pem" >/dev/null
"$WORK/ccauthz" keys jwks --key "$WORK/issuer.pem" >"$WORK/issuer.jwks.json"
ISSUER=https://bench-issuer.invalid
GRPC_PORT=$("$WORK/load" -free-port)
ADMIN_PORT=$("$WORK/load" -free-port)
cat >"$WORK/config.yaml" <<CFG
listeners:
  grpc: 127.0.0.1:$GRPC_PORT
  admin: 127.0.0.1:$ADMIN_PORT
catalog: embedded:example
backends:
  - name: ai_gateway
    manifest: embedded:ai_gateway
issuers:
  - name: bench
    issuer: $ISSUER
    jwks_file: $WORK/issuer.jwks.json
    kind: instance
logging:
  level: warn
  allow_sample_rate: 0
CFG
"$WORK/ccauthz" serve --config "$WORK/config.yaml" >"$WORK/ccauthz.log" 2>&1 &
PID=$!
pids+=("$PID")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== idle: $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \n' ' ')"
echo "== minting $TOKENS tokens and presenting each once ($(nproc) cores)"
# One pass: --requests = --tokens with --sequential; the run ends when every
# request has been sent once (max-requests) or after 10 minutes.
"$WORK/load" -target "127.0.0.1:$GRPC_PORT" -key "$WORK/issuer.pem" -issuer "$ISSUER" \
  -tokens "$TOKENS" -requests "$TOKENS" -sequential -deny-percent 0 -users 1 \
  -warmup 0s -duration 10m -max-requests "$TOKENS" -concurrency "$CONCURRENCY" \
  -target-pid "$PID" -metrics-url "http://127.0.0.1:$ADMIN_PORT/metrics" -label ccauthz
