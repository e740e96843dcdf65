package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// TestRealisticRoutesAllowed: every route of the realistic mix, encoded as
// the load generator sends it (the body routes with their body), is allowed
// by the AI gateway example policy for a token with grantedScopes and
// checks the unit primitive the route names — so the mix's allow
// expectation holds, and the body routes reach their body rules.
func TestRealisticRoutesAllowed(t *testing.T) {
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Build(catalog.Example(), m, policy.BuildOptions{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	scopes := make([]any, len(grantedScopes))
	for i, s := range grantedScopes {
		scopes[i] = s
	}
	bodies := 0
	for i, wr := range realisticRoutes {
		h := baseHeaders("", "inst-1", "user-1", "42")
		if wr.upHeader != "" {
			h["x-gitlab-unit-primitive"] = wr.upHeader
		}
		raw, err := encodeBody(wr.route, h, "ai_gateway", i, wr.body)
		if err != nil {
			t.Fatal(err)
		}
		var req authv3.CheckRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			t.Fatal(err)
		}
		hr := req.GetAttributes().GetRequest().GetHttp()
		headers := map[string]string{}
		for k, v := range hr.GetHeaders() {
			if !strings.HasPrefix(k, ":") {
				headers[k] = v
			}
		}
		in := &policy.Input{
			Backend: "ai_gateway", Method: hr.GetMethod(), Path: hr.GetPath(), Host: hr.GetHost(), Headers: headers,
			Body: envoy.DecodeBody(envoy.EnvoyBody(hr.GetRawBody(), hr.GetBody(), headers), 0),
			Token: policy.TokenInput{Status: policy.TokenValid, Reason: "ok", Issuer: "gitlab_com", Kind: "instance",
				Claims: map[string]any{"iss": "https://gitlab.com", "sub": "inst-1", "gitlab_realm": "self-managed",
					"aud": []any{"gitlab-ai-gateway"}, "scopes": scopes},
				Hash: strings.Repeat("a", 64)},
		}
		if wr.body != "" {
			bodies++
			if in.Body.Status != policy.BodyOK {
				t.Errorf("%s: body status %q, want ok", wr.path, in.Body.Status)
			}
		}
		d, err := p.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != 200 || !slices.Contains(d.UnitPrimitives, wr.up) {
			t.Errorf("%s (body %t): status %d reason %s unit primitives %v, want 200 checking %s",
				wr.path, wr.body != "", d.Status, d.Reason, d.UnitPrimitives, wr.up)
		}
	}
	if bodies < 2 {
		t.Errorf("the realistic mix has %d body routes, want a completion and a generation", bodies)
	}
}
