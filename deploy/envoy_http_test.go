package deploy

import (
	"os"
	"strings"
	"testing"
	"time"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// TestEnvoyHTTPServiceBootstrap decodes and validates envoy/envoy-http.yaml
// and checks the http_service contract ccauthz's HTTP check listener expects.
func TestEnvoyHTTPServiceBootstrap(t *testing.T) {
	data, err := os.ReadFile("envoy/envoy-http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeEnvoyBootstrap(data)
	if err != nil {
		t.Fatalf("envoy/envoy-http.yaml: %v", err)
	}
	var hcm hcmv3.HttpConnectionManager
	f := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) < 2 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("want ext_authz first and the router last, got %v", filters)
	}
	var ext extauthzv3.ExtAuthz
	if err := filters[0].GetTypedConfig().UnmarshalTo(&ext); err != nil {
		t.Fatal(err)
	}
	if ext.GetFailureModeAllow() || ext.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Error("ext_authz must fail closed with 503")
	}
	if ext.GetWithRequestBody() != nil {
		t.Error("ext_authz must not buffer request bodies")
	}
	hs := ext.GetHttpService()
	if hs == nil {
		t.Fatal("no http_service")
	}
	// Must match ccauthz's default http_check.envoy_path_prefix.
	if hs.GetPathPrefix() != "/ext_authz" {
		t.Errorf("path_prefix %q, want /ext_authz", hs.GetPathPrefix())
	}
	if to := hs.GetServerUri().GetTimeout().AsDuration(); to <= 0 || to > time.Second {
		t.Errorf("timeout %v: want a bound under 1s", to)
	}
	cluster := hs.GetServerUri().GetCluster()
	var port uint32
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == cluster {
			ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
			port = ep.GetAddress().GetSocketAddress().GetPortValue()
			if ep.GetHealthCheckConfig().GetPortValue() != 8181 || c.GetHealthChecks()[0].GetHttpHealthCheck().GetPath() != "/readyz" {
				t.Errorf("cluster %s must health-check /readyz on the admin port", cluster)
			}
		}
	}
	if port != 9192 {
		t.Errorf("http_service cluster %q reaches port %d, want ccauthz's HTTP check port 9192", cluster, port)
	}
	var backend string
	for _, h := range hs.GetAuthorizationRequest().GetHeadersToAdd() {
		if strings.EqualFold(h.GetKey(), "x-ccauthz-backend") {
			backend = h.GetValue()
		}
	}
	if backend == "" {
		t.Error("the filter must name the backend in X-Ccauthz-Backend")
	}
	up := hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders().GetPatterns()
	if len(up) != 1 || up[0].GetPrefix() != "x-ccauthz-" || !up[0].GetIgnoreCase() {
		t.Errorf("allowed_upstream_headers %v, want the x-ccauthz- prefix", up)
	}
	client := map[string]bool{}
	for _, p := range hs.GetAuthorizationResponse().GetAllowedClientHeaders().GetPatterns() {
		client[p.GetExact()] = true
	}
	for _, h := range []string{"content-type", "www-authenticate", "retry-after"} {
		if !client[h] {
			t.Errorf("allowed_client_headers lacks %s", h)
		}
	}
	var gitlab bool
	for _, p := range ext.GetAllowedHeaders().GetPatterns() {
		gitlab = gitlab || p.GetPrefix() == "x-gitlab-"
	}
	if !gitlab {
		t.Error("allowed_headers must send the X-Gitlab-* headers the policy checks")
	}
}
