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

# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
bench_setup
start_ccauthz 0
PID=$CCAUTHZ_PID
echo "== idle: $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \n' ' ')"
echo "== minting $TOKENS tokens and presenting each once ($(nproc) cores)"
# One pass: --requests = --tokens with --sequential; the run ends when every
# request has been sent once (max-requests) or after 10 minutes.
"$WORK/load" -target "127.0.0.1:$GRPC_PORT" -key "$WORK/issuer.pem" -issuer "$ISSUER" \
  -tokens "$TOKENS" -requests "$TOKENS" -sequential -deny-percent 0 -users 1 \
  -warmup 0s -duration 10m -max-requests "$TOKENS" -concurrency "$CONCURRENCY" \
  -target-pid "$PID" -metrics-url "http://127.0.0.1:$ADMIN_PORT/metrics" -label ccauthz
