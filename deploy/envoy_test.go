package deploy

import (
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/authz/ratelimit"
)

func loadBootstrap(t *testing.T) *hcmv3.HttpConnectionManager {
	t.Helper()
	data, err := os.ReadFile("envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeEnvoyBootstrap(data)
	if err != nil {
		t.Fatalf("envoy/envoy.yaml: %v", err)
	}
	if n := len(b.GetStaticResources().GetListeners()); n != 1 {
		t.Fatalf("want 1 listener, got %d", n)
	}
	var hcm hcmv3.HttpConnectionManager
	f := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	// The ccauthz cluster must speak HTTP/2 (gRPC).
	var found bool
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "ccauthz" {
			found = true
			if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
				t.Error("ccauthz cluster: no HTTP/2 protocol options")
			}
			if c.GetType() != clusterv3.Cluster_STATIC {
				t.Errorf("ccauthz cluster type %v", c.GetType())
			}
		}
	}
	if !found {
		t.Fatal("no ccauthz cluster")
	}
	return &hcm
}

func TestEnvoyBootstrapExtAuthz(t *testing.T) {
	hcm := loadBootstrap(t)
	var ext *extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.ext_authz" {
			ext = new(extauthzv3.ExtAuthz)
			if err := f.GetTypedConfig().UnmarshalTo(ext); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ext == nil {
		t.Fatal("no ext_authz filter")
	}
	if ext.GetFailureModeAllow() {
		t.Error("ext_authz must fail closed (failure_mode_allow: false)")
	}
	if ext.GetWithRequestBody() != nil {
		t.Error("ext_authz must not buffer request bodies globally: only the body routes enable with_request_body")
	}
	if got := ext.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != "ccauthz" {
		t.Errorf("grpc cluster %q", got)
	}
	if to := ext.GetGrpcService().GetTimeout().AsDuration(); to <= 0 || to > time.Second {
		t.Errorf("ext_authz timeout %v: want a bound under 1s", to)
	}
	if ext.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("status_on_error %v, want 503", ext.GetStatusOnError().GetCode())
	}
	// The router must be last, and every route names its backend.
	filters := hcm.GetHttpFilters()
	if filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
		t.Error("router is not the last HTTP filter")
	}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
			if !ok {
				t.Errorf("route %v has no ext_authz per-route config", r.GetMatch())
				continue
			}
			var per extauthzv3.ExtAuthzPerRoute
			if err := cfg.UnmarshalTo(&per); err != nil {
				t.Fatal(err)
			}
			ext := per.GetCheckSettings().GetContextExtensions()
			if ext["backend"] == "" {
				t.Errorf("route %v does not name its backend", r.GetMatch())
			}
			// A route that rewrites its prefix must tell ccauthz, or the
			// policy judges a path the backend never sees (and finds no route).
			if r.GetRoute().GetPrefixRewrite() != "" && ext["strip_prefix"] != r.GetMatch().GetPrefix() &&
				ext["strip_prefix"]+"/" != r.GetMatch().GetPrefix() {
				t.Errorf("route %v rewrites its prefix but context_extensions.strip_prefix is %q", r.GetMatch(), ext["strip_prefix"])
			}
		}
	}
}

func TestDecodeEnvoyBootstrapRejects(t *testing.T) {
	good, err := os.ReadFile("envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ from, to, want string }{
		"unknown field":      {"failure_mode_allow: false\n", "failure_mode_allows: false\n", "unknown field"},
		"invalid in an Any":  {"stat_prefix: cloud_connector", "stat_prefix: \"\"", "StatPrefix"},
		"unknown @type":      {"ext_authz.v3.ExtAuthz\n", "ext_authz.v3.ExtAuthzz\n", "ExtAuthzz"},
		"invalid in cluster": {"connect_timeout: 0.25s", "connect_timeout: -1s", "ConnectTimeout"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(string(good), c.from, c.to, 1)
			if bad == string(good) {
				t.Fatalf("fixture edit %q did not apply", c.from)
			}
			_, err := DecodeEnvoyBootstrap([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error mentioning %q, got %v", c.want, err)
			}
		})
	}
}

// TestEnvoyBootstrapRateLimits proves the shipped bootstrap limits with
// exactly the generated actions: every route's rate_limits equal what
// `ccauthz ratelimit envoy-actions` writes, and the rate-limit filter asks
// the ratelimit cluster (HTTP/2) in the generated configuration's domain,
// after ext_authz and before the router.
func TestEnvoyBootstrapRateLimits(t *testing.T) {
	hcm := loadBootstrap(t)
	want := ratelimit.EnvoyRateLimits()
	routes := 0
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			routes++
			got := r.GetRoute().GetRateLimits()
			if len(got) != len(want) {
				t.Errorf("route %v: %d rate_limits, want the %d generated ones", r.GetMatch(), len(got), len(want))
				continue
			}
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("route %v rate_limits[%d] differs from the generated actions:\n got  %v\n want %v", r.GetMatch(), i, got[i], want[i])
				}
			}
		}
	}
	if routes == 0 {
		t.Fatal("no routes")
	}
	var names []string
	var rl *ratelimitv3.RateLimit
	for _, f := range hcm.GetHttpFilters() {
		names = append(names, f.GetName())
		if f.GetName() == "envoy.filters.http.ratelimit" {
			rl = new(ratelimitv3.RateLimit)
			if err := f.GetTypedConfig().UnmarshalTo(rl); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := strings.Join(names, " "); got != "envoy.filters.http.ext_authz envoy.filters.http.ratelimit envoy.filters.http.router" {
		t.Fatalf("filter order %q", got)
	}
	if rl.GetDomain() != ratelimit.DefaultDomain {
		t.Errorf("rate-limit domain %q, want %q (the generated configuration's)", rl.GetDomain(), ratelimit.DefaultDomain)
	}
	if rl.GetStage() != 0 || rl.GetRequestType() != "external" {
		t.Errorf("stage %d request_type %q", rl.GetStage(), rl.GetRequestType())
	}
	svc := rl.GetRateLimitService()
	if svc.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "ratelimit" || svc.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("rate limit service %v", svc)
	}
	data, err := os.ReadFile("envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeEnvoyBootstrap(data)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "ratelimit" {
			found = true
			if _, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; !ok {
				t.Error("ratelimit cluster: no HTTP/2 protocol options (gRPC)")
			}
		}
	}
	if !found {
		t.Error("no ratelimit cluster")
	}
}
