# benchmarks/lib.sh — shared by run.sh and memory.sh (sourced, not run).
# bench_setup makes $WORK, builds ccauthz (or copies $CCAUTHZ_BIN) and load into it, and creates an
# issuer key ($WORK/issuer.pem, $ISSUER) the load generator mints with;
# start_ccauthz serves the example catalog and AI gateway manifest trusting
# that issuer, with ccauthz's default logging (and /debug/pprof/ when PROFILE
# is set), pinned to SERVER_CPUS when set, and sets CCAUTHZ_PID, GRPC_PORT
# and ADMIN_PORT. Everything
# started is stopped, and $WORK removed, on exit.

bench_setup() {
  WORK=$(mktemp -d)
  pids=()
  trap bench_cleanup EXIT
  if [ -n "${CCAUTHZ_BIN:-}" ]; then
    # Measure another build (e.g. main's) under this tree's harness.
    cp "$CCAUTHZ_BIN" "$WORK/ccauthz"
  else
    go build -o "$WORK/ccauthz" ./cmd/ccauthz
  fi
  go build -o "$WORK/load" ./benchmarks/load
  "$WORK/ccauthz" keys generate --out "$WORK/issuer.pem" >/dev/null
  "$WORK/ccauthz" keys jwks --key "$WORK/issuer.pem" >"$WORK/issuer.jwks.json"
  ISSUER=https://bench-issuer.invalid
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# start_ccauthz DECISION_CACHE (0: ccauthz's default)
start_ccauthz() {
  GRPC_PORT=$("$WORK/load" -free-port)
  ADMIN_PORT=$("$WORK/load" -free-port)
  cat >"$WORK/config.yaml" <<CFG
listeners:
  grpc: 127.0.0.1:$GRPC_PORT
  admin: 127.0.0.1:$ADMIN_PORT
  http: ""
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
  decisions: ${1:-0}
CFG
  # No logging section: ccauthz runs with its default logging (level info,
  # 1 % of allows and up to logging.max_denials_per_second denials logged),
  # so the figures include what a default deployment pays for its log.
  if [ -n "${PROFILE:-}" ]; then
    # run.sh takes a CPU profile over the admin listener (admin_server.pprof).
    printf 'admin_server: {pprof: true, write_timeout: 10m}\n' >>"$WORK/config.yaml"
  fi
  # SERVER_CPUS (a taskset CPU list) pins ccauthz; pinned at start, its
  # GOMAXPROCS follows the pinning (unless GOMAXPROCS is set: dropped here,
  # as .ci/run exports it).
  local pin=()
  if [ -n "${SERVER_CPUS:-}" ]; then pin=(env -u GOMAXPROCS taskset -c "$SERVER_CPUS"); fi
  "${pin[@]}" "$WORK/ccauthz" serve --config "$WORK/config.yaml" >"$WORK/ccauthz.log" 2>&1 &
  CCAUTHZ_PID=$!
  pids+=("$CCAUTHZ_PID")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/ccauthz.log"
  return 1
}
