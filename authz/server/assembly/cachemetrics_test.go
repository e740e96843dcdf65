package assembly

import (
	"context"
	"testing"
)

// TestCacheMetrics: the token and decision cache metrics follow real checks
// through the real verifier and policy.
func TestCacheMetrics(t *testing.T) {
	a, auth := assemble(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		a.Server.Check(ctx, checkRequest("/v2/code/completions", auth))
	}
	a.Server.Check(ctx, checkRequest("/v2/code/generations", auth))

	got := map[string]float64{}
	families, err := a.Server.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[f.GetName()] = v
		}
	}
	// Two distinct requests (completions, generations) of one token: two
	// decisions cached, the two repeats were hits, one verified token.
	want := map[string]float64{
		"ccauthz_decision_cache_entries":      2,
		"ccauthz_decision_cache_hits_total":   2,
		"ccauthz_decision_cache_misses_total": 2,
		"ccauthz_token_cache_entries":         1,
	}
	for name, w := range want {
		if v, ok := got[name]; !ok || v != w {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, w)
		}
	}
}
