package server

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ccauthz/ccauthz/policy"
)

// Metric label values for the decision label.
const (
	decisionAllow = "allow"
	decisionDeny  = "deny"
)

// unknownBackendLabel replaces a backend name that is not configured, so a
// client cannot grow the label set.
const unknownBackendLabel = "unknown"

// Metrics holds the server's Prometheus collectors in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	checks     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	wouldDeny  *prometheus.CounterVec
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
	reloadOK   prometheus.Gauge
	backendUp  *prometheus.GaugeVec
	panics     prometheus.Counter
}

// BuildInfo labels the ccauthz_build_info metric.
type BuildInfo struct {
	Version  string
	Revision string
}

// NewMetrics registers every collector in a new registry. stats may be nil
// (no token or key metrics); now is the server clock (key metrics carry
// fetch timestamps, so scrapes do not read it).
func NewMetrics(info BuildInfo, stats Stats, now Clock) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccauthz_checks_total",
			Help: "Checks answered, by backend, protocol mode (grpc, envoy_http, nginx, forward, json), decision (allow or deny, as enforced) and reason.",
		}, []string{"backend", "mode", "decision", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ccauthz_check_duration_seconds",
			Help:    "Time to answer a check, from request mapping to response, by backend.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"backend"}),
		wouldDeny: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccauthz_dry_run_would_deny_total",
			Help: "Requests allowed only because of dry-run mode, by backend and the reason they would have been denied.",
		}, []string{"backend", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ccauthz_reloads_total",
			Help: "Snapshot reloads by result: success, failure (the last good snapshot keeps serving), unchanged (inputs unchanged, nothing rebuilt) or coalesced (answered by a reload that ran meanwhile).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ccauthz_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful snapshot build.",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ccauthz_last_reload_successful",
			Help: "1 if the last reload attempt succeeded, 0 if it failed and an older snapshot is serving.",
		}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ccauthz_backend_ready",
			Help: "1 when the backend's policy is built and its issuers' keys are fresh.",
		}, []string{"backend"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ccauthz_check_panics_total",
			Help: "Checks that panicked and were answered with internal_error (fail closed).",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ccauthz_build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "revision", "go_version"})
	buildInfo.WithLabelValues(info.Version, info.Revision, runtime.Version()).Set(1)
	reg.MustRegister(m.checks, m.latency, m.wouldDeny, m.reloads, m.lastReload, m.reloadOK, m.backendUp, m.panics, buildInfo,
		// The standard runtime and process metrics (goroutines, GC, RSS,
		// CPU, open file descriptors) an SRE expects next to ours.
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if stats != nil {
		reg.MustRegister(&statsCollector{stats: stats, now: now})
	}
	return m
}

// backendCounters are the counters of one backend, resolved once per snapshot
// so the check path does a map lookup instead of a label-hash per request.
type backendCounters struct {
	checks    map[counterKey]prometheus.Counter
	wouldDeny map[policy.Reason]prometheus.Counter
	latency   prometheus.Observer
}

type counterKey struct {
	mode     string
	decision string
	reason   policy.Reason
}

// checkModes are the protocols a check arrives by, the mode label's closed
// set (checkState.mode is always one of them).
var checkModes = [...]string{modeGRPC, modeEnvoy, modeNginx, modeForward, modeJSON}

// forBackend pre-creates the series a backend can produce, and only those:
// allows with allowed or public, denials with every other reason, and, when
// dryRun (the backend's or the server's), the would-be denials that were
// allowed. An impossible pair such as decision="deny",reason="allowed" never
// appears in /metrics.
func (m *Metrics) forBackend(label string, dryRun bool) *backendCounters {
	c := &backendCounters{
		checks:    make(map[counterKey]prometheus.Counter, len(checkModes)*2*len(knownReasons)),
		wouldDeny: make(map[policy.Reason]prometheus.Counter, len(knownReasons)),
		latency:   m.latency.WithLabelValues(label),
	}
	for _, r := range knownReasons {
		allowReason := r == policy.ReasonAllowed || r == policy.ReasonPublic
		for _, mode := range checkModes {
			if allowReason || dryRun {
				c.checks[counterKey{mode, decisionAllow, r}] = m.checks.WithLabelValues(label, mode, decisionAllow, string(r))
			}
			if !allowReason {
				c.checks[counterKey{mode, decisionDeny, r}] = m.checks.WithLabelValues(label, mode, decisionDeny, string(r))
			}
		}
		if !allowReason && dryRun {
			c.wouldDeny[r] = m.wouldDeny.WithLabelValues(label, string(r))
		}
	}
	return c
}

// observeUnchanged counts a reload whose inputs were unchanged: it succeeded
// without rebuilding anything.
func (m *Metrics) observeUnchanged(at time.Time) {
	m.reloads.WithLabelValues("unchanged").Inc()
	m.lastReload.Set(float64(at.UnixNano()) / 1e9)
	m.reloadOK.Set(1)
}

func (m *Metrics) observeReload(ok bool, at time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.reloadOK.Set(1)
		m.lastReload.Set(float64(at.UnixNano()) / 1e9)
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
	m.reloadOK.Set(0)
}

// statsCollector reads token and key statistics at scrape time.
type statsCollector struct {
	stats Stats
	now   Clock
}

var (
	descTokenHits = prometheus.NewDesc("ccauthz_token_cache_hits_total",
		"Verified-token cache hits.", nil, nil)
	descTokenMisses = prometheus.NewDesc("ccauthz_token_cache_misses_total",
		"Verified-token cache misses (full verification).", nil, nil)
	descKeyFetches = prometheus.NewDesc("ccauthz_key_fetches_total",
		"Key set fetches per issuer.", []string{"issuer"}, nil)
	descKeyFailures = prometheus.NewDesc("ccauthz_key_fetch_failures_total",
		"Failed key set fetches per issuer.", []string{"issuer"}, nil)
	descKeyFetched = prometheus.NewDesc("ccauthz_key_last_fetch_success_timestamp_seconds",
		"Unix time of the last successful fetch of the issuer's keys; absent until the first one (age: time() - this).", []string{"issuer"}, nil)
	descKeyReady = prometheus.NewDesc("ccauthz_issuer_ready",
		"1 when the issuer's keys are fresh enough to verify tokens.", []string{"issuer"}, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTokenHits, descTokenMisses, descKeyFetches, descKeyFailures, descKeyFetched, descKeyReady} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	hits, misses := c.stats.TokenCache()
	ch <- prometheus.MustNewConstMetric(descTokenHits, prometheus.CounterValue, float64(hits))
	ch <- prometheus.MustNewConstMetric(descTokenMisses, prometheus.CounterValue, float64(misses))
	for _, is := range c.stats.Issuers() {
		ch <- prometheus.MustNewConstMetric(descKeyFetches, prometheus.CounterValue, float64(is.Fetches), is.Name)
		ch <- prometheus.MustNewConstMetric(descKeyFailures, prometheus.CounterValue, float64(is.Failures), is.Name)
		if !is.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(descKeyFetched, prometheus.GaugeValue, float64(is.LastSuccess.UnixNano())/1e9, is.Name)
		}
		ready := 0.0
		if is.Ready {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(descKeyReady, prometheus.GaugeValue, ready, is.Name)
	}
}
