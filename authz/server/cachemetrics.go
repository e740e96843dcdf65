package server

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
)

// cacheCollector reports the sizes and hit counts of the verified-token cache
// and of each backend's decision cache, read at scrape time from the live
// snapshot: what an operator needs to size caches and to check the memory
// budget (benchmarks/README.md, memory test).
type cacheCollector struct {
	srv *Server
}

// tokenCacheStatser is implemented by *token.Verifier.
type tokenCacheStatser interface {
	Stats() token.CacheStats
}

// decisionCacheStatser is implemented by *policy.Policy.
type decisionCacheStatser interface {
	Stats() policy.Stats
}

var (
	descTokenEntries = prometheus.NewDesc("ccauthz_token_cache_entries",
		"Verified tokens held in the cache.", nil, nil)
	descTokenEvictions = prometheus.NewDesc("ccauthz_token_cache_evictions_total",
		"Verified tokens evicted to keep the cache within its bounds.", nil, nil)
	descDecisionEntries = prometheus.NewDesc("ccauthz_decision_cache_entries",
		"Decisions held in the backend's decision cache.", []string{"backend"}, nil)
	descDecisionHits = prometheus.NewDesc("ccauthz_decision_cache_hits_total",
		"Decisions served from the backend's decision cache (since start, across reloads).", []string{"backend"}, nil)
	descDecisionMisses = prometheus.NewDesc("ccauthz_decision_cache_misses_total",
		"Decisions evaluated by the policy because the cache had none (since start, across reloads).", []string{"backend"}, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTokenEntries, descTokenEvictions, descDecisionEntries, descDecisionHits, descDecisionMisses} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	if v, ok := c.srv.deps.Verifier.(tokenCacheStatser); ok {
		st := v.Stats()
		ch <- prometheus.MustNewConstMetric(descTokenEntries, prometheus.GaugeValue, float64(st.Entries))
		ch <- prometheus.MustNewConstMetric(descTokenEvictions, prometheus.CounterValue, float64(st.Evictions))
	}
	snap := c.srv.snap.Load()
	if snap == nil {
		return
	}
	for _, name := range snap.Names() {
		b, _ := snap.Backend(name)
		d, ok := b.Decider.(decisionCacheStatser)
		if !ok {
			continue
		}
		st := d.Stats()
		ch <- prometheus.MustNewConstMetric(descDecisionEntries, prometheus.GaugeValue, float64(st.CacheEntries), name)
		// Counters of policies a reload replaced are carried over, so the
		// totals never go backwards.
		r := c.srv.retiredFor(name)
		ch <- prometheus.MustNewConstMetric(descDecisionHits, prometheus.CounterValue, float64(st.Hits+r.hits), name)
		ch <- prometheus.MustNewConstMetric(descDecisionMisses, prometheus.CounterValue, float64(st.Misses+r.misses), name)
	}
}

// cacheStats serves GET /debug/cache: each backend's decision cache as
// policy.Stats (JSON, by backend name), i.e. what keys it (the headers and
// the claims the policy reads, whether a token is keyed on its claims, its
// grant or its hash, and why not) and its counters. Names and counters
// only: no request, header value or claim value.
func (s *Server) cacheStats(w http.ResponseWriter, _ *http.Request) {
	out := map[string]policy.Stats{}
	if snap := s.snap.Load(); snap != nil {
		for _, name := range snap.Names() {
			b, _ := snap.Backend(name)
			if d, ok := b.Decider.(decisionCacheStatser); ok {
				out[name] = d.Stats()
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// MetricsRegistry is the registry /metrics serves, for tests and embedders.
func (s *Server) MetricsRegistry() *prometheus.Registry { return s.metrics.Registry }
