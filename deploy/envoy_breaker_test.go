package deploy

import (
	"os"
	"testing"
)

// TestEnvoyCircuitBreakers: every shipped Envoy config bounds the checks in
// flight to ccauthz with a circuit breaker (docs/configuration.md
// "Overload"): without one, at 3× capacity the checks queue inside
// ccauthz's transport and almost none is answered within the ext_authz
// timeout (docs/reliability.md).
func TestEnvoyCircuitBreakers(t *testing.T) {
	for file, cluster := range map[string]string{
		"envoy/envoy.yaml":      "ccauthz",
		"envoy/envoy-mtls.yaml": "ccauthz",
		"envoy/envoy-http.yaml": "ccauthz_http",
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeEnvoyBootstrap(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		found := false
		for _, c := range b.GetStaticResources().GetClusters() {
			if c.GetName() != cluster {
				continue
			}
			found = true
			th := c.GetCircuitBreakers().GetThresholds()
			if len(th) == 0 {
				t.Errorf("%s: cluster %s has no circuit breaker", file, cluster)
				continue
			}
			// Envoy's default is 1024: far over what ccauthz answers within
			// the 0.25s timeout once its transport queues.
			if n := th[0].GetMaxRequests().GetValue(); n == 0 || n > 256 {
				t.Errorf("%s: cluster %s max_requests %d, want 1..256", file, cluster, n)
			}
			if n := th[0].GetMaxPendingRequests().GetValue(); n == 0 || n > 256 {
				t.Errorf("%s: cluster %s max_pending_requests %d, want 1..256", file, cluster, n)
			}
		}
		if !found {
			t.Errorf("%s: no cluster %s", file, cluster)
		}
	}
}
