#!/usr/bin/env bash
# benchmarks/overload.sh — offer ccauthz about FACTOR× the throughput it can
# sustain for OVERLOAD, open loop (requests start at a fixed rate whether or
# not earlier ones were answered, each with Envoy's ext_authz deadline), and
# report what load shedding (docs/configuration.md "Overload") makes of it:
#
#   - max:        closed-loop throughput at CONCURRENCY (the capacity);
#   - unloaded:   p99 at 10 % of max, open loop;
#   - overload:   p99 of the checks that were answered (not shed) vs the
#                 unloaded p99, how many were shed or timed out, peak RSS
#                 vs idle RSS;
#   - recovery:   the rate then drops to 10 % of max: seconds until the first
#                 one-second window with nothing shed, nothing timed out and
#                 p99 within 2× the unloaded p99.
#
#   benchmarks/overload.sh
#   FACTOR=3 OVERLOAD=30s MAX_IN_FLIGHT=-1 benchmarks/overload.sh   # limit off, for comparison
#
# The load generator runs on the same machine and competes for its cores;
# the rate it actually sent is printed next to the one offered.
# SERVER_CPUS and LOAD_CPUS (taskset lists, e.g. 0 and 1) pin ccauthz and
# the generator to separate cores so neither steals the other's CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

FACTOR=${FACTOR:-3}
OVERLOAD=${OVERLOAD:-30s}
RECOVERY=${RECOVERY:-15}              # seconds at 10 % after the overload
MAX_DURATION=${MAX_DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-64}
CONNS=${CONNS:-2}
TOKENS=${TOKENS:-1000}
CALL_TIMEOUT=${CALL_TIMEOUT:-250ms}   # Envoy's ext_authz timeout in deploy/envoy.yaml
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-0}     # overload.max_in_flight; 0: the default
SERVER_CPUS=${SERVER_CPUS:-}          # taskset CPU list for ccauthz; empty: unpinned
LOAD_CPUS=${LOAD_CPUS:-}              # taskset CPU list for the load generator
OVERLOAD_EXTRA=${OVERLOAD_EXTRA:-}    # more overload keys, \n between them: "max_queue_wait: 20ms\nrefuse_streams: true"
# Envoy's circuit breaker on the ext_authz cluster (max_requests in
# deploy/envoy): at most this many checks in flight to ccauthz, the rest
# answered 503 by Envoy at once without reaching ccauthz. The generator
# emulates it with --max-outstanding; 0 leaves it off (unbounded).
CIRCUIT_BREAKER=${CIRCUIT_BREAKER:-0}

# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
echo "== building (ccauthz, load)"
bench_setup
start_ccauthz 0
if [ "$MAX_IN_FLIGHT" != 0 ] || [ -n "$OVERLOAD_EXTRA" ] || [ -n "$SERVER_CPUS" ]; then
  # Restart with the overload settings and the pinning (lib.sh's config has
  # no overload section; pinning at start lets GOMAXPROCS follow it).
  kill "$CCAUTHZ_PID"; wait "$CCAUTHZ_PID" 2>/dev/null || true
  printf 'overload:\n  max_in_flight: %s\n' "$MAX_IN_FLIGHT" >>"$WORK/config.yaml"
  if [ -n "$OVERLOAD_EXTRA" ]; then printf '%b\n' "$OVERLOAD_EXTRA" | sed 's/^/  /' >>"$WORK/config.yaml"; fi
  PIN=()
  if [ -n "$SERVER_CPUS" ]; then PIN=(env -u GOMAXPROCS taskset -c "$SERVER_CPUS"); fi
  "${PIN[@]}" "$WORK/ccauthz" serve --config "$WORK/config.yaml" >"$WORK/ccauthz.log" 2>&1 &
  CCAUTHZ_PID=$!
  pids+=("$CCAUTHZ_PID")
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then
    echo "ccauthz did not become ready with the overload settings:" >&2
    cat "$WORK/ccauthz.log" >&2
    exit 1
  fi
fi
LOAD=("$WORK/load")
if [ -n "$LOAD_CPUS" ]; then LOAD=(taskset -c "$LOAD_CPUS" "$WORK/load"); fi
TARGET=127.0.0.1:$GRPC_PORT
json_num() { grep -o "\"$1\":[0-9.e+-]*" | head -1 | cut -d: -f2; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$CCAUTHZ_PID/status"; }

common=(-key "$WORK/issuer.pem" -issuer "$ISSUER" -tokens "$TOKENS" -target "$TARGET" -target-pid "$CCAUTHZ_PID" -conns "$CONNS" -json)
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== pinning: ccauthz ${SERVER_CPUS:-any} cores, load generator ${LOAD_CPUS:-any}"
echo "== limit: overload.max_in_flight $(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^ccauthz_checks_in_flight_limit / {print $2}') (0: off)"
IDLE_RSS=$(rss_mib)

"${LOAD[@]}" "${common[@]}" -label max -duration "$MAX_DURATION" -warmup 3s -concurrency "$CONCURRENCY" >"$WORK/max.json"
MAX=$(json_num rps <"$WORK/max.json")
LOW=$(awk -v m="$MAX" 'BEGIN {printf "%.0f", m/10}')
HIGH=$(awk -v m="$MAX" -v f="$FACTOR" 'BEGIN {printf "%.0f", m*f}')
echo "== capacity: $(printf '%.0f' "$MAX") checks/s closed loop at concurrency $CONCURRENCY; unloaded $LOW/s, overload $HIGH/s"

"${LOAD[@]}" "${common[@]}" -label unloaded -warmup 2s -concurrency "$CONCURRENCY" -rate "$LOW" -duration 10s -call-timeout "$CALL_TIMEOUT" >"$WORK/low.json"
P99_0=$(json_num p99_ms <"$WORK/low.json")
IDLE_RSS_AFTER=$(rss_mib)

OL_SECONDS=${OVERLOAD%s}
BREAKER=()
if [ "$CIRCUIT_BREAKER" -gt 0 ]; then BREAKER=(-max-outstanding "$CIRCUIT_BREAKER"); fi
"${LOAD[@]}" "${common[@]}" -label overload -warmup 2s -concurrency "$CONCURRENCY" -rate "$HIGH" -duration "$((OL_SECONDS + RECOVERY))s" \
  -step-after "$OVERLOAD" -step-rate "$LOW" -call-timeout "$CALL_TIMEOUT" "${BREAKER[@]}" >"$WORK/high.json" || true

# The overload phase's figures come from its one-second windows.
grep -o '{"second":[^}]*}' "$WORK/high.json" | sed 's/[{}"]//g; s/,/ /g; s/:/ /g' >"$WORK/windows.txt"
read -r SENT ANSWERED SHED TIMEOUTS ERRORS PEAK_WIN_RSS < <(awk -v n="$OL_SECONDS" '
  { for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) }
  v["second"] < n { s += v["sent"]; a += v["answered"]; sh += v["shed"]; t += v["timeouts"]; e += v["errors"]; if (v["target_rss_mib"] > r) r = v["target_rss_mib"] }
  END { print s, a, sh, t, e, r }' "$WORK/windows.txt")
RECOVERED=$(awk -v n="$OL_SECONDS" -v p="$P99_0" '
  { for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) }
  v["second"] >= n && v["shed"] == 0 && v["timeouts"] == 0 && v["errors"] == 0 && v["p99_ms"] <= 2 * p { print v["second"] - n + 1; exit }
  END { }' "$WORK/windows.txt")
# p99 of answered checks during the overload only: the per-second p99s'
# maximum (an upper bound; the run's p99 includes the recovery seconds).
P99_OL=$(awk -v n="$OL_SECONDS" '{ for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) } v["second"] < n && v["second"] > 0 && v["answered"] > 0 && v["p99_ms"] >= m { m = v["p99_ms"]; seen = 1 } END { print (seen ? m : "none") }' "$WORK/windows.txt")
PEAK_RSS=$(json_num target_peak_rss_mib <"$WORK/high.json")
WRONG=$(json_num wrong_decisions <"$WORK/high.json")
NOT_SENT=$(json_num not_sent <"$WORK/high.json")
SHED_METRIC=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^ccauthz_checks_shed_total/ {printf "%s=%s ", $1, $2}')

echo
echo "| figure | value |"
echo "|---|---:|"
echo "| capacity (closed loop, concurrency $CONCURRENCY) | $(printf '%.0f' "$MAX") checks/s |"
echo "| unloaded p99 (open loop at $LOW/s) | $P99_0 ms |"
echo "| offered during overload | $HIGH/s for $OVERLOAD (sent $((SENT / OL_SECONDS))/s) |"
echo "| answered / shed / timed out ($CALL_TIMEOUT) / errors | $ANSWERED / $SHED / $TIMEOUTS / $ERRORS |"
echo "| over the circuit breaker ($CIRCUIT_BREAKER in flight; Envoy's immediate 503), whole run | ${NOT_SENT:-0} |"
echo "| wrong decisions (whole run) | ${WRONG:-?} |"
if [ "$P99_OL" = none ]; then
  echo "| p99 of answered checks, worst second of the overload | none answered after its first second |"
else
  echo "| p99 of answered checks, worst second of the overload | $P99_OL ms ($(awk -v a="$P99_OL" -v b="$P99_0" 'BEGIN {printf "%.1f", a/b}')× unloaded) |"
fi
echo "| RSS idle / after warm-up / peak in overload | $IDLE_RSS / $IDLE_RSS_AFTER / ${PEAK_WIN_RSS} MiB (VmHWM ${PEAK_RSS:-?} MiB) |"
echo "| recovery (first clean second at $LOW/s) | ${RECOVERED:-not within ${RECOVERY}}s |"
echo "| ccauthz shed counters | $SHED_METRIC |"
echo
# Per second of the overload: answered p99 (ms), the generator's worst
# lateness (ms) and the cores ccauthz used, to tell a slow ccauthz from a
# starved one or a stalled generator.
echo "overload seconds (p99 ms / generator late ms / ccauthz cores): $(awk -v n="$OL_SECONDS" '
  { for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) }
  v["second"] < n { printf "%s: %.1f/%.0f/%.2f, ", v["second"], v["p99_ms"], v["lag_ms"], v["target_cpu"] }' "$WORK/windows.txt")"
