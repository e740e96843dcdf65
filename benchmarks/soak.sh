#!/usr/bin/env bash
# benchmarks/soak.sh — run ccauthz at a steady ~80 % of its capacity for
# DURATION and check that nothing drifts (docs/reliability.md "Soak"):
#
#   1. max:  closed-loop throughput with the realistic mix for MAX_DURATION;
#   1b. calibration (RATE_BASIS=min, the default): open loop at
#      CALIBRATE_PERCENT (60) of max for CALIBRATE (10s) after its warm-up,
#      measuring from /proc the CPU per check of ccauthz and the generator;
#      the box's open-loop maximum is the rate at which those fill the
#      cores each side runs on (nproc, or SERVER_CPUS/LOAD_CPUS);
#   2. soak: after a closed-loop WARMUP with its own (new) tokens, open loop
#      (fixed arrival rate, Envoy's ext_authz deadline per call) at
#      LOAD_PERCENT of min(max, open-loop maximum) for DURATION (of max
#      alone with RATE_BASIS=closed, as before 2026-12-02), realistic mix,
#      every answer checked against the decision the mix expects;
#   3. meanwhile RSS (/proc/PID/status VmRSS) and go_goroutines less
#      ccauthz_checks_in_flight (/metrics: the goroutines a leak grows)
#      are sampled every SAMPLE seconds (10 s; 2 s in a short run);
#   4. flatness: the median of the samples in the last minute must be within
#      FLAT_PERCENT of the median in the second minute (short run, DURATION
#      under 3m: last third against first third), for RSS and goroutines;
#   5. leak: once the load has stopped, the idle goroutine count must be
#      back within IDLE_GOROUTINE_SLACK of the one before the soak;
#   6. CONTROL=1: the same open loop (rate, DURATION, deadline, mix, warm-up,
#      -check=false) against benchmarks/noop, reported next to ccauthz's,
#      to tell the box's and the generator's misses from ccauthz's. It
#      never changes the verdict.
#
#   benchmarks/soak.sh                  # 10 minutes
#   DURATION=30s benchmarks/soak.sh     # the short version
#   make soak DURATION=3m
#   CONTROL=1 make soak                 # and the no-op control after it
#   RATE_BASIS=closed make soak         # 80 % of the closed loop, as before
#
# Exits 1 when any check failed: errors, timeouts or shed checks (at 80 % none
# is expected), wrong decisions (warm-up included), a flatness failure or
# goroutines left behind; also errors or wrong decisions in the calibration.
# Every second of the open loop records the box's busy and steal share
# (/proc/stat), printed with each second that missed. DURATION is in s or m. SERVER_CPUS/LOAD_CPUS pin
# ccauthz and the generator (taskset lists); KEEP=DIR keeps the JSON results.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10m}
LOAD_PERCENT=${LOAD_PERCENT:-80}
FLAT_PERCENT=${FLAT_PERCENT:-10}
IDLE_GOROUTINE_SLACK=${IDLE_GOROUTINE_SLACK:-2}
# The goroutine series may also move by this many (a base of ~27 swings by
# a few with the transport's goroutines between scrapes; a leak of one per
# check or per 1 000 checks grows by hundreds).
GOROUTINE_SLACK=${GOROUTINE_SLACK:-5}
MAX_DURATION=${MAX_DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-32}
CONNS=${CONNS:-2}
TOKENS=${TOKENS:-500}
DENY_PERCENT=${DENY_PERCENT:-15}
REQUESTS=${REQUESTS:-200000}
# The soak's generator mints its own tokens, new to ccauthz: it warms the
# caches closed loop for WARMUP (as the capacity run did) before the open
# loop starts; the warm-up's errors and wrong decisions count as failures.
WARMUP=${WARMUP:-3s}
CALL_TIMEOUT=${CALL_TIMEOUT:-250ms}   # Envoy's ext_authz timeout in deploy/envoy.yaml
SERVER_CPUS=${SERVER_CPUS:-}          # taskset CPU list for ccauthz (lib.sh); empty: unpinned
LOAD_CPUS=${LOAD_CPUS:-}              # taskset CPU list for the load generator
# The soak's rate: LOAD_PERCENT of min(closed-loop capacity, open-loop
# maximum) (min), or of the closed-loop capacity alone (closed).
RATE_BASIS=${RATE_BASIS:-min}
CALIBRATE=${CALIBRATE:-10s}           # open-loop calibration length (RATE_BASIS=min)
CALIBRATE_PERCENT=${CALIBRATE_PERCENT:-60}   # its rate, % of the closed-loop capacity
CONTROL=${CONTROL:-0}                 # 1: the no-op control after the soak

case "$DURATION" in
  *m) SECONDS_TOTAL=$((${DURATION%m} * 60)) ;;
  *s) SECONDS_TOTAL=${DURATION%s} ;;
  *) echo "DURATION=$DURATION: want e.g. 30s or 10m" >&2; exit 2 ;;
esac
if ! [ "$SECONDS_TOTAL" -ge 9 ] 2>/dev/null; then
  echo "DURATION=$DURATION: want at least 9s" >&2; exit 2
fi
case "$WARMUP" in
  *[!0-9]*s | s | *[!s]) echo "WARMUP=$WARMUP: want whole seconds, e.g. 3s (0s: none)" >&2; exit 2 ;;
esac
case "$RATE_BASIS" in
  min | closed) ;;
  *) echo "RATE_BASIS=$RATE_BASIS: want min or closed" >&2; exit 2 ;;
esac
case "$CONTROL" in
  0 | 1) ;;
  *) echo "CONTROL=$CONTROL: want 0 or 1" >&2; exit 2 ;;
esac
case "$CALIBRATE" in
  *[!0-9]*s | s | 0s | *[!s]) echo "CALIBRATE=$CALIBRATE: want whole seconds, e.g. 10s" >&2; exit 2 ;;
esac
case "$CALIBRATE_PERCENT" in
  '' | *[!0-9]* | 0) echo "CALIBRATE_PERCENT=$CALIBRATE_PERCENT: want a whole percentage, e.g. 60" >&2; exit 2 ;;
esac
if [ "$SECONDS_TOTAL" -ge 180 ]; then SHORT=false; SAMPLE=${SAMPLE:-10}; else SHORT=true; SAMPLE=${SAMPLE:-2}; fi

# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
echo "== building (ccauthz, load$([ "$CONTROL" = 1 ] && echo ", noop"))"
bench_setup
if [ "$CONTROL" = 1 ]; then go build -o "$WORK/noop" ./benchmarks/noop; fi
start_ccauthz 0
TARGET=127.0.0.1:$GRPC_PORT
METRICS=http://127.0.0.1:$ADMIN_PORT/metrics
# sed reads all of grep's output: with pipefail, head -1 closing the pipe
# early killed the script with SIGPIPE once the summary had many matches.
json_num() { grep -o "\"$1\":[0-9.e+-]*" | sed -n '1s/^[^:]*://p'; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$CCAUTHZ_PID/status"; }
goroutines() { curl -fsS --max-time 5 "$METRICS" | awk '/^go_goroutines / {print $2}'; }
# resident_goroutines: go_goroutines less the checks in flight, from one
# scrape. Under open-loop load the goroutine count is mostly the queue of
# checks (each one a handler goroutine), which swings with every burst of
# the generator; what a leak grows is the rest. The series the flatness
# check compares.
resident_goroutines() {
  curl -fsS --max-time 5 "$METRICS" | awk '/^go_goroutines / {g = $2} /^ccauthz_checks_in_flight / {f = $2}
    END { if (g == "") exit 1; printf "%d", g - f }'
}

LOAD=("$WORK/load")
if [ -n "$LOAD_CPUS" ]; then LOAD=(taskset -c "$LOAD_CPUS" "$WORK/load"); fi
mix=(-mix realistic -requests "$REQUESTS" -key "$WORK/issuer.pem" -issuer "$ISSUER" -tokens "$TOKENS"
  -deny-percent "$DENY_PERCENT" -conns "$CONNS" -json)
common=("${mix[@]}" -target "$TARGET" -target-pid "$CCAUTHZ_PID")
echo "== pinning: ccauthz ${SERVER_CPUS:-any} cores, load generator ${LOAD_CPUS:-any}"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3); load average $(cut -d' ' -f1-3 /proc/loadavg)"

"${LOAD[@]}" "${common[@]}" -label max -duration "$MAX_DURATION" -warmup 3s -concurrency "$CONCURRENCY" >"$WORK/max.json"
MAX=$(json_num rps <"$WORK/max.json")
echo "== capacity: $(printf '%.0f' "$MAX") checks/s closed loop at concurrency $CONCURRENCY (ccauthz $(json_num target_cpu_ms_per_1k_requests <"$WORK/max.json" | xargs printf '%.0f'), generator $(json_num load_cpu_ms_per_1k_requests <"$WORK/max.json" | xargs printf '%.0f') ms CPU per 1k checks; errors $(json_num errors <"$WORK/max.json"), wrong $(json_num wrong_decisions <"$WORK/max.json"))"
# The calibration: the open loop costs both sides more CPU per check than
# the closed loop (fewer checks per syscall and wake-up), so LOAD_PERCENT of
# the closed-loop capacity can leave a small box no slack (docs/reliability.md
# "Soak", how the rate is chosen). Its own tokens are warmed up first.
plan=(-plan-rate -closed "$WORK/max.json" -percent "$LOAD_PERCENT" -basis "$RATE_BASIS" -cores "$(nproc)"
  -server-cpus "$SERVER_CPUS" -load-cpus "$LOAD_CPUS")
CAL_ERRORS=0 CAL_WRONG=0
# others_cores FILE.json: the cores the rest of the box (neither ccauthz nor
# the generator) used during an open-loop run: busy share × nproc less what
# the two used (sent/s × CPU per check). The open-loop maximum assumes them
# idle; on a shared box they are not.
others_cores() {
  awk -v b="$(json_num box_busy <"$1")" -v r="$(json_num sent_rps <"$1")" -v t="$(json_num target_cpu_ms_per_1k <"$1")" \
    -v l="$(json_num load_cpu_ms_per_1k <"$1")" -v n="$(nproc)" 'BEGIN {printf "%.2f", b * n - r * (t + l) / 1e6}'
}
if [ "$RATE_BASIS" = min ]; then
  CAL_RATE=$(awk -v m="$MAX" -v p="$CALIBRATE_PERCENT" 'BEGIN {printf "%.0f", m*p/100}')
  "${LOAD[@]}" "${common[@]}" -label calibrate -rate "$CAL_RATE" -duration "$CALIBRATE" -call-timeout "$CALL_TIMEOUT" \
    -warmup "$WARMUP" -concurrency "$CONCURRENCY" -max-requests "$((CAL_RATE * ${CALIBRATE%s} + 1))" >"$WORK/calibrate.json"
  CAL_ERRORS=$(( $(json_num errors <"$WORK/calibrate.json") + $(json_num warmup_errors <"$WORK/calibrate.json") ))
  CAL_WRONG=$(( $(json_num wrong_decisions <"$WORK/calibrate.json") + $(json_num warmup_wrong_decisions <"$WORK/calibrate.json") ))
  echo "== calibration: open loop at $CAL_RATE/s ($CALIBRATE_PERCENT % of the closed loop) for $CALIBRATE: ccauthz $(json_num target_cpu_ms_per_1k <"$WORK/calibrate.json" | xargs printf '%.0f'), generator $(json_num load_cpu_ms_per_1k <"$WORK/calibrate.json" | xargs printf '%.0f') ms CPU per 1k checks; box $(json_num box_busy <"$WORK/calibrate.json" | awk '{printf "%.0f", $1*100}') % busy, $(json_num box_steal <"$WORK/calibrate.json" | awk '{printf "%.1f", $1*100}') % steal, other processes $(others_cores "$WORK/calibrate.json") cores; timeouts $(json_num timeouts <"$WORK/calibrate.json"), shed $(json_num shed <"$WORK/calibrate.json"), errors $CAL_ERRORS, wrong $CAL_WRONG"
  plan+=(-calibration "$WORK/calibrate.json")
fi
PLAN=$("$WORK/load" "${plan[@]}")
read -r RATE _ OPEN_MAX BASIS <<<"$PLAN"
if [ "$RATE_BASIS" = closed ]; then
  RATE_WHY="$LOAD_PERCENT % of the closed-loop capacity (RATE_BASIS=closed)"
else
  RATE_WHY="$LOAD_PERCENT % of min(closed loop $(printf '%.0f' "$MAX"), open-loop maximum $OPEN_MAX) = of the $([ "$BASIS" = open ] && echo "open-loop maximum" || echo "closed-loop capacity")"
  echo "== open-loop maximum: $OPEN_MAX checks/s on ccauthz ${SERVER_CPUS:-any} / generator ${LOAD_CPUS:-any} of $(nproc) cores (cores / CPU per check; the $([ "$BASIS" = open ] && echo "open-loop maximum" || echo "closed-loop capacity") sets the rate)"
fi
echo "== soak at $RATE_WHY: $RATE/s for $DURATION, sampling every ${SAMPLE}s"

in_flight() { curl -fsS --max-time 5 "$METRICS" | awk '/^ccauthz_checks_in_flight / {print $2}'; }
# idle_goroutines: go_goroutines once no check is in flight and the count
# has stopped falling (connections closed, handlers returned), at most ~10 s.
idle_goroutines() {
  local prev=-1 now
  for _ in $(seq 1 20); do
    now=$(goroutines)
    if [ "$(in_flight)" = 0 ] && [ "$now" = "$prev" ]; then break; fi
    prev=$now
    sleep 0.5
  done
  echo "$now"
}
IDLE_GOROUTINES_BEFORE=$(idle_goroutines)
checks_total() { curl -fsS --max-time 5 "$METRICS" | awk '/^ccauthz_checks_total[{ ]/ {n += $NF} END {printf "%.0f", n}'; }
# The sampler: "seconds rss_mib goroutines" lines from the soak's start, which
# is WARMUP after ccauthz's check counter first moves (the generator signs
# tokens and encodes the mix first, for a few seconds, then warms up).
sampler() {
  local t=0 before
  before=$(checks_total)
  for _ in $(seq 1 600); do
    [ "$(checks_total)" != "$before" ] && break
    sleep 0.1
  done
  sleep "${WARMUP%s}"
  # Strictly inside the load's DURATION: a sample at its end would catch
  # the load stopping, not ccauthz drifting.
  while [ "$t" -lt "$SECONDS_TOTAL" ]; do
    echo "$t $(rss_mib) $(resident_goroutines || echo -1)"
    sleep "$SAMPLE"
    t=$((t + SAMPLE))
  done
}
sampler >"$WORK/samples.txt" &
SAMPLER_PID=$!
pids+=("$SAMPLER_PID")
SOAK_RC=0
"${LOAD[@]}" "${common[@]}" -label soak -rate "$RATE" -duration "$DURATION" -call-timeout "$CALL_TIMEOUT" \
  -warmup "$WARMUP" -concurrency "$CONCURRENCY" -max-requests "$((RATE * SECONDS_TOTAL + 1))" >"$WORK/soak.json" || SOAK_RC=$?
wait "$SAMPLER_PID" 2>/dev/null || true
kill -0 "$CCAUTHZ_PID" 2>/dev/null || { echo "ccauthz exited during the soak:"; cat "$WORK/ccauthz.log"; exit 1; }
IDLE_GOROUTINES_AFTER=$(idle_goroutines)

# The runtime's GC pause summary has quantiles 0, 0.25, 0.5, 0.75 and 1 only:
# the max (1) is the upper bound reported for the p99.
GC=$(curl -fsS "$METRICS" | awk -F'[ "]' '/^go_gc_duration_seconds\{quantile="(0.5|0.75|1)"\}/ {printf "q%s %.3f ms, ", $2, $4*1000}')
GC_COUNT=$(curl -fsS "$METRICS" | awk '/^go_gc_duration_seconds_count / {print $2}')
# What ccauthz shed, by reason (capacity run and warm-up included): the
# in-flight limit (overloaded) or a caller deadline already gone (deadline).
SHED_BY=$(curl -fsS "$METRICS" | awk -F'[ "]' '/^ccauthz_checks_shed_total\{/ && $NF > 0 {printf "%s %s, ", $2, $NF}')

SENT_RPS=$(json_num sent_rps <"$WORK/soak.json")
ERRORS=$(json_num errors <"$WORK/soak.json")
TIMEOUTS=$(json_num timeouts <"$WORK/soak.json")
SHED=$(json_num shed <"$WORK/soak.json")
NOT_SENT=$(json_num not_sent <"$WORK/soak.json")
WRONG=$(json_num wrong_decisions <"$WORK/soak.json")
WARM_ERRORS=$(json_num warmup_errors <"$WORK/soak.json")
WARM_WRONG=$(json_num warmup_wrong_decisions <"$WORK/soak.json")
ANSWERED=$(json_num answered <"$WORK/soak.json")
P50=$(json_num p50_ms <"$WORK/soak.json")
P99=$(json_num p99_ms <"$WORK/soak.json")

# Flatness windows (seconds from the start of the soak, half-open).
if $SHORT; then
  A0=0; A1=$((SECONDS_TOTAL / 3)); B0=$((SECONDS_TOTAL - SECONDS_TOTAL / 3)); B1=$((SECONDS_TOTAL + 1))
  WHAT="last third vs first third"
else
  A0=60; A1=120; B0=$((SECONDS_TOTAL - 60)); B1=$((SECONDS_TOTAL + 1))
  WHAT="last minute vs second minute"
fi
# flat COLUMN: prints "medianA medianB change% ok|FAIL". Medians, so that one
# sample taken in a burst of in-flight checks does not decide; a leak moves
# the median.
# flat COLUMN [SLACK]: SLACK is an absolute change that also counts as flat.
flat() {
  awk -v c="$1" -v slack="${2:-0}" -v a0="$A0" -v a1="$A1" -v b0="$B0" -v b1="$B1" -v lim="$FLAT_PERCENT" '
    $c < 0 { bad = 1 }
    function median(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
      return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
    }
    $1 >= a0 && $1 < a1 { va[++na] = $c }
    $1 >= b0 && $1 < b1 { vb[++nb] = $c }
    END {
      if (bad || na == 0 || nb == 0) { print "- - - FAIL(no-samples)"; exit }
      ma = median(va, na); mb = median(vb, nb)
      if (ma == 0) { print "- - - FAIL(no-samples)"; exit }
      d = (mb - ma) * 100 / ma
      printf "%.1f %.1f %+.1f %s\n", ma, mb, d, ((d <= lim && d >= -lim) || (mb - ma <= slack && ma - mb <= slack)) ? "ok" : "FAIL"
    }' "$WORK/samples.txt"
}
read -r RSS_A RSS_B RSS_D RSS_OK < <(flat 2)
read -r GOR_A GOR_B GOR_D GOR_OK < <(flat 3 "$GOROUTINE_SLACK")

echo
echo "| figure | value |"
echo "|---|---:|"
echo "| rate: $RATE_WHY | $RATE/s |"
echo "| offered / sent | $RATE/s / $(printf '%.0f' "$SENT_RPS")/s for $DURATION |"
echo "| answered | $ANSWERED |"
echo "| errors / timeouts ($CALL_TIMEOUT) / shed / not sent | $ERRORS / $TIMEOUTS / $SHED / $NOT_SENT |"
echo "| shed by ccauthz, by reason (whole run: capacity, calibration, warm-up, soak) | ${SHED_BY:-none} |"
echo "| wrong decisions | $WRONG |"
echo "| warm-up ($WARMUP closed loop): errors / wrong decisions | $WARM_ERRORS / $WARM_WRONG |"
echo "| goroutines idle, before → after the soak | $IDLE_GOROUTINES_BEFORE → $IDLE_GOROUTINES_AFTER |"
echo "| p50 / p99 | $P50 / $P99 ms |"
echo "| GC pause (go_gc_duration_seconds; p99 ≤ q1, the max) | $GC$GC_COUNT cycles |"
echo "| RSS MiB, $WHAT | $RSS_A → $RSS_B ($RSS_D %) $RSS_OK |"
echo "| goroutines besides checks in flight, $WHAT | $GOR_A → $GOR_B ($GOR_D %) $GOR_OK |"
echo
echo "RSS MiB series (every ${SAMPLE}s): $(awk '{printf "%s ", $2}' "$WORK/samples.txt")"
echo "goroutines besides checks in flight, series (every ${SAMPLE}s): $(awk '{printf "%s ", $3}' "$WORK/samples.txt")"

# Where the misses fell: the one-second windows with a timeout, a shed check
# or an error, and the worst seconds' p99. Clustered misses (a few bad
# seconds) point at a stall of the box or the generator; spread ones at a
# rate the server cannot sustain. Each with the generator's worst lateness
# in starting requests, the cores the target and the generator used in that
# second, and the whole box's busy and steal share (/proc/stat): a second of
# misses with the box near 100 % busy was the box saturated, one with steal
# the hypervisor taking the CPU.
# windows FILE.json: one "key value key value ..." line per second.
windows() { grep -o '{"second":[^}]*}' "$1" | sed 's/[{}"]//g; s/,/ /g; s/:/ /g'; }
# misses WINDOWS TARGET: the seconds with misses, at most 20, and "N of M seconds".
misses() {
  awk -v who="$2" '
  { for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) }
  v["timeouts"] + v["shed"] + v["errors"] > 0 { n++; if (n <= 20) printf "%s: %s/%s/%s %.0f %.0f %.2f/%.2f %.0f/%.1f, ", v["second"], v["timeouts"], v["shed"], v["errors"], v["p99_ms"], v["lag_ms"], v["target_cpu"], v["load_cpu"], v["box_busy"] * 100, v["box_steal"] * 100 }
  END { printf "%d of %d seconds", n, NR }' "$1"
}
# median_of WINDOWS KEY [SCALE]
median_of() {
  awk -v k="$2" -v f="${3:-1}" '{ for (i = 1; i < NF; i += 2) v[$i] = $(i + 1); print v[k] * f }' "$1" |
    sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
# report_windows WINDOWS TARGET: the lines soak.sh prints for one open loop.
report_windows() {
  echo "$2: seconds with misses (second: timeouts/shed/errors, p99 ms, generator late ms, $2/generator cores, box busy/steal %): $(misses "$1" "$2")"
  echo "$2: median second: cores $2 $(median_of "$1" target_cpu), generator $(median_of "$1" load_cpu); box $(median_of "$1" box_busy 100 | xargs printf '%.0f') % busy, $(median_of "$1" box_steal 100 | xargs printf '%.1f') % steal; generator late over 10 ms in $(awk '{ for (i = 1; i < NF; i += 2) v[$i] = $(i + 1) } v["lag_ms"] > 10 { n++ } END { print n + 0 }' "$1") seconds"
  echo "$2: worst seconds by p99 (second: p99 ms): $(awk '
    { for (i = 1; i < NF; i += 2) v[$i] = $(i + 1); print v["second"], v["p99_ms"] }' "$1" | sort -k2 -gr | awk 'NR <= 5' | awk '{printf "%s: %s, ", $1, $2}')"
}
windows "$WORK/soak.json" >"$WORK/windows.txt"
report_windows "$WORK/windows.txt" ccauthz
MISSED_SECONDS=$(misses "$WORK/windows.txt" ccauthz | sed 's/.*, //')

# The no-op control: the same open loop against a server that does no work,
# on the same box right after, to tell the misses of the box and the
# generator from ccauthz's. ccauthz stays up, idle.
CONTROL_RC=0
if [ "$CONTROL" = 1 ]; then
  NOOP_PORT=$("$WORK/load" -free-port)
  noop=("$WORK/noop")
  if [ -n "$SERVER_CPUS" ]; then noop=(taskset -c "$SERVER_CPUS" "$WORK/noop"); fi
  "${noop[@]}" -addr "127.0.0.1:$NOOP_PORT" >"$WORK/noop.log" 2>&1 &
  NOOP_PID=$!
  pids+=("$NOOP_PID")
  for _ in $(seq 1 100); do grep -q listening "$WORK/noop.log" && break; sleep 0.1; done
  echo
  echo "== no-op control: the same open loop ($RATE/s for $DURATION, $CALL_TIMEOUT deadline, realistic mix, $WARMUP warm-up, -check=false) against benchmarks/noop"
  "${LOAD[@]}" "${mix[@]}" -target "127.0.0.1:$NOOP_PORT" -target-pid "$NOOP_PID" -check=false -label control \
    -rate "$RATE" -duration "$DURATION" -call-timeout "$CALL_TIMEOUT" -warmup "$WARMUP" -concurrency "$CONCURRENCY" \
    -max-requests "$((RATE * SECONDS_TOTAL + 1))" >"$WORK/control.json" || CONTROL_RC=$?
  C() { json_num "$1" <"$WORK/control.json"; }
  windows "$WORK/control.json" >"$WORK/control-windows.txt"
  C_MISSED=$(misses "$WORK/control-windows.txt" no-op | sed 's/.*, //')
  echo
  echo "| figure | ccauthz | no-op control |"
  echo "|---|---:|---:|"
  echo "| offered / sent | $RATE/s / $(printf '%.0f' "$SENT_RPS")/s | $RATE/s / $(printf '%.0f' "$(C sent_rps)")/s |"
  echo "| answered | $ANSWERED | $(C answered) |"
  echo "| errors / timeouts ($CALL_TIMEOUT) / shed / not sent | $ERRORS / $TIMEOUTS / $SHED / $NOT_SENT | $(C errors) / $(C timeouts) / $(C shed) / $(C not_sent) |"
  echo "| p50 / p99 | $P50 / $P99 ms | $(C p50_ms) / $(C p99_ms) ms |"
  echo "| seconds with misses | $MISSED_SECONDS | $C_MISSED |"
  echo
  report_windows "$WORK/control-windows.txt" no-op
  [ "$CONTROL_RC" = 0 ] || echo "no-op control: the load generator exited $CONTROL_RC: $(grep -o '"first_error":"[^"]*"' "$WORK/control.json" || true)"
fi
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$WORK"/{max.json,soak.json,samples.txt,ccauthz.log} "$KEEP"/
  for f in calibrate.json control.json; do [ ! -f "$WORK/$f" ] || cp "$WORK/$f" "$KEEP"/; done
fi
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
fail=()
[ "$SOAK_RC" = 0 ] || fail+=("load generator exited $SOAK_RC: $(grep -o '"first_error":"[^"]*"' "$WORK/soak.json" || true)")
[ "${ERRORS:-x}" = 0 ] && [ "${TIMEOUTS:-x}" = 0 ] && [ "${SHED:-x}" = 0 ] && [ "${NOT_SENT:-x}" = 0 ] ||
  fail+=("errors $ERRORS, timeouts $TIMEOUTS, shed $SHED, not sent $NOT_SENT")
[ "${WRONG:-x}" = 0 ] || fail+=("wrong decisions $WRONG")
[ "${WARM_ERRORS:-x}" = 0 ] && [ "${WARM_WRONG:-x}" = 0 ] || fail+=("warm-up errors $WARM_ERRORS, wrong decisions $WARM_WRONG")
[ "$CAL_ERRORS" = 0 ] && [ "$CAL_WRONG" = 0 ] || fail+=("calibration (and its warm-up): errors $CAL_ERRORS, wrong decisions $CAL_WRONG")
# A goroutine that outlives its check (a leak) is still there once the load
# has stopped and every connection is closed: the idle count must come back
# to within IDLE_GOROUTINE_SLACK of what it was before the soak.
awk -v a="${IDLE_GOROUTINES_BEFORE:-x}" -v b="${IDLE_GOROUTINES_AFTER:-x}" -v s="$IDLE_GOROUTINE_SLACK" \
  'BEGIN { exit !(a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b <= a + s) }' ||
  fail+=("goroutines idle before the soak $IDLE_GOROUTINES_BEFORE, after it $IDLE_GOROUTINES_AFTER (slack $IDLE_GOROUTINE_SLACK)")
[ "$RSS_OK" = ok ] || fail+=("RSS not flat ($WHAT: $RSS_D %, limit $FLAT_PERCENT %)")
[ "$GOR_OK" = ok ] || fail+=("goroutines not flat ($WHAT: $GOR_D %, limit $FLAT_PERCENT %)")
# missed_pct FILE.json: timeouts, shed and errors as a % of the checks sent.
missed_pct() {
  awk -v t="$(json_num timeouts <"$1")" -v s="$(json_num shed <"$1")" -v e="$(json_num errors <"$1")" \
    -v a="$(json_num answered <"$1")" 'BEGIN { n = t + s + e + a; printf "%.3g", n ? (t + s + e) * 100 / n : 0 }'
}
# The control never changes the verdict; it says whether the box and the
# generator missed too at this rate, which attributes ccauthz's misses.
if [ "$CONTROL" = 1 ] && [ "$CONTROL_RC" = 0 ] && [ $((TIMEOUTS + SHED + ERRORS)) -gt 0 ]; then
  if [ $(($(C timeouts) + $(C shed) + $(C errors))) -gt 0 ]; then
    echo "NOTE: the no-op control missed too, at the same rate on the same box: $(C timeouts) timeouts, $(C shed) shed, $(C errors) errors, $(missed_pct "$WORK/control.json") % of its checks, in $C_MISSED (ccauthz: $TIMEOUTS / $SHED / $ERRORS, $(missed_pct "$WORK/soak.json") %, in $MISSED_SECONDS). Misses the control shares are the box's or the generator's; the verdict still counts them."
  else
    echo "NOTE: the no-op control had no miss at the same rate on the same box (ccauthz: $TIMEOUTS timeouts, $SHED shed, $ERRORS errors, $(missed_pct "$WORK/soak.json") %, in $MISSED_SECONDS)."
  fi
fi
if [ ${#fail[@]} -gt 0 ]; then
  printf 'SOAK FAILED: %s\n' "${fail[@]}"
  exit 1
fi
echo "SOAK PASSED"
