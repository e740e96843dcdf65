package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// routeFor is Envoy's route choice for a request target, for the matchers
// the shipped bootstrap uses: the first route whose prefix (or path) matches
// and whose header matchers (only :path with safe_regex here) all match.
func routeFor(t *testing.T, routes []*routev3.Route, target string) *routev3.Route {
	t.Helper()
	path, _, _ := strings.Cut(target, "?")
	for _, r := range routes {
		m := r.GetMatch()
		switch {
		case m.GetPrefix() != "" && !strings.HasPrefix(path, m.GetPrefix()):
			continue
		case m.GetPath() != "" && path != m.GetPath():
			continue
		}
		ok := true
		for _, h := range m.GetHeaders() {
			if h.GetName() != ":path" || h.GetStringMatch().GetSafeRegex() == nil {
				t.Fatalf("route %v: header matcher %v is not one this test understands", m, h)
			}
			re, err := regexp.Compile(h.GetStringMatch().GetSafeRegex().GetRegex())
			if err != nil {
				t.Fatalf("route %v: %v", m, err)
			}
			// Envoy's safe_regex matches the whole value.
			if loc := re.FindStringIndex(target); loc == nil || loc[0] != 0 || loc[1] != len(target) {
				ok = false
			}
		}
		if ok {
			return r
		}
	}
	return nil
}

func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	var per extauthzv3.ExtAuthzPerRoute
	if err := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(&per); err != nil {
		t.Fatal(err)
	}
	return &per
}

// TestEnvoyBodyRoutes: the body is buffered and sent to ccauthz on exactly
// the routes whose decision reads it, with the limit ccauthz expects; the
// edge prefixes of cloud.gitlab.com reach the AI gateway with the prefix
// stripped, onto paths the ai_gateway manifest has routes for.
func TestEnvoyBodyRoutes(t *testing.T) {
	hcm := loadBootstrap(t)
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target, backend, upstream string
		body                      bool
	}{
		{"/ai/v3/code/completions", "ai_gateway", "/v3/code/completions", true},
		{"/ai/v4/code/suggestions?x=1", "ai_gateway", "/v4/code/suggestions", true},
		{"/ai/v2/chat/agent", "ai_gateway", "/v2/chat/agent", true},
		{"/ai/v2/chat/agentx", "ai_gateway", "", false},
		{"/ai/v4/code/suggestions/x", "ai_gateway", "", false},
		{"/ai/v2/code/completions", "ai_gateway", "/v2/code/completions", false},
		{"/ai/v1/proxy/anthropic/v1/messages", "ai_gateway", "/v1/proxy/anthropic/*", false},
		{"/ai/v1/prompts/chat/explain_code", "ai_gateway", "/v1/prompts/*", false},
		{"/auth/v1/code/user_access_token", "ai_gateway", "/v1/code/user_access_token", false},
		{"/aws/ai/v1/amazon_q/events", "ai_gateway", "/v1/amazon_q/events", false},
		{"/aws/ai/v1/amazon_q/oauth/application", "ai_gateway", "/v1/amazon_q/oauth/application", false},
		{"/DuoWorkflow/ExecuteWorkflow", "duo_workflow_service", "", false},
	}
	var paths []string
	for _, r := range m.Routes {
		paths = append(paths, r.Path)
	}
	for _, tc := range tests {
		r := routeFor(t, routes, tc.target)
		if r == nil {
			t.Errorf("%s: no route", tc.target)
			continue
		}
		per := perRoute(t, r)
		ext := per.GetCheckSettings().GetContextExtensions()
		if ext["backend"] != tc.backend {
			t.Errorf("%s: backend %q, want %q", tc.target, ext["backend"], tc.backend)
		}
		path, _, _ := strings.Cut(tc.target, "?")
		if tc.upstream != "" {
			if got := envoy.StripPrefix(path, ext["strip_prefix"]); !strings.HasSuffix(tc.upstream, "*") && got != tc.upstream {
				t.Errorf("%s: ccauthz judges %q, want %q", tc.target, got, tc.upstream)
			}
			if !slices.Contains(paths, tc.upstream) {
				t.Errorf("%s: the ai_gateway manifest has no route %q", tc.target, tc.upstream)
			}
		}
		b := per.GetCheckSettings().GetWithRequestBody()
		if (b != nil) != tc.body {
			t.Errorf("%s: with_request_body %v, want %v", tc.target, b, tc.body)
			continue
		}
		if b == nil {
			continue
		}
		if int(b.GetMaxRequestBytes()) != envoy.DefaultMaxBodyBytes || int(b.GetMaxRequestBytes()) != config.DefaultRequestBodyMax {
			t.Errorf("%s: max_request_bytes %d, want ccauthz's request_body.max_bytes default %d", tc.target, b.GetMaxRequestBytes(), envoy.DefaultMaxBodyBytes)
		}
		if !b.GetAllowPartialMessage() || !b.GetPackAsBytes() {
			t.Errorf("%s: want allow_partial_message and pack_as_bytes: %v", tc.target, b)
		}
	}
}

// TestEnvoyHTTPServiceBodyRoutes: the http_service bootstrap buffers the
// body on the same routes, and lets Envoy's partial-body header reach
// ccauthz.
func TestEnvoyHTTPServiceBodyRoutes(t *testing.T) {
	data, err := os.ReadFile("envoy/envoy-http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeEnvoyBootstrap(data)
	if err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	for target, body := range map[string]bool{
		"/v3/code/completions": true, "/v4/code/suggestions?a=b": true, "/v2/chat/agent": true,
		"/v2/code/completions": false, "/v1/proxy/anthropic/v1/messages": false, "/v2/chat/agent/x": false,
	} {
		r := routeFor(t, routes, target)
		if r == nil {
			t.Fatalf("%s: no route", target)
		}
		got := false
		if cfg, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]; ok {
			var per extauthzv3.ExtAuthzPerRoute
			if err := cfg.UnmarshalTo(&per); err != nil {
				t.Fatal(err)
			}
			wb := per.GetCheckSettings().GetWithRequestBody()
			got = wb != nil
			if got && (int(wb.GetMaxRequestBytes()) != envoy.DefaultMaxBodyBytes || !wb.GetAllowPartialMessage() || !wb.GetPackAsBytes()) {
				t.Errorf("%s: with_request_body %v", target, wb)
			}
		}
		if got != body {
			t.Errorf("%s: with_request_body %v, want %v", target, got, body)
		}
	}
	var ext extauthzv3.ExtAuthz
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ext); err != nil {
		t.Fatal(err)
	}
	allowed := false
	for _, p := range ext.GetAllowedHeaders().GetPatterns() {
		if strings.EqualFold(p.GetExact(), envoy.HeaderPartialBody) {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("allowed_headers must let %s through", envoy.HeaderPartialBody)
	}
}
