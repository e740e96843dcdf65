package benchmarks

import (
	"context"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// benchPolicy builds the example catalog + AI gateway manifest policy.
func benchPolicy(b *testing.B, cacheSize int) *policy.Policy {
	b.Helper()
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.Build(catalog.Example(), m, policy.BuildOptions{CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchInput is an allowed code-completions request with a realistic header
// set (the headers GitLab Rails sends, facts §3.1).
func benchInput() *policy.Input {
	return &policy.Input{
		Backend: "ai_gateway",
		Method:  "POST",
		Path:    "/v2/code/completions",
		Host:    "cloud.gitlab.com",
		Headers: map[string]string{
			"x-gitlab-authentication-type": "oidc",
			"x-gitlab-realm":               "saas",
			"x-gitlab-instance-id":         "8f6e4253-58ce-42b9-869c-97f5c2287ad2",
			"x-gitlab-global-user-id":      "W2HPShrOch8RMah8ZWsjrXtAXo+stqKsNX0exQ1rsQQ=",
			"x-gitlab-host-name":           "gitlab.com",
			"x-gitlab-version":             "18.9.0",
			"x-gitlab-duo-seat-count":      "250",
			"x-request-id":                 "01J0000000000000000000000",
			"user-agent":                   "gitlab-rails",
			"content-type":                 "application/json",
		},
		Token: policy.TokenInput{
			Status: policy.TokenValid, Reason: "ok", Issuer: "gitlab_com", Kind: "instance",
			Claims: map[string]any{
				"iss": "https://gitlab.com", "sub": "8f6e4253-58ce-42b9-869c-97f5c2287ad2",
				"aud": []any{"gitlab-ai-gateway"}, "gitlab_realm": "saas", "jti": "b3b9d8e2-1c7e-4c1c-9b0e-3f1f0c2f0c11",
				"iat": 1.7e9, "nbf": 1.7e9 - 5, "exp": 1.7e9 + 3600,
				"scopes": []any{"complete_code", "generate_code", "duo_chat", "documentation_search", "explain_code"},
			},
			Hash: strings.Repeat("ab", 32),
		},
	}
}

// BenchmarkPolicyDecideUncached evaluates the Rego on every call (cache
// disabled): the cost of a decision on a cache miss.
func BenchmarkPolicyDecideUncached(b *testing.B) {
	p := benchPolicy(b, -1)
	in := benchInput()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("%+v %v", d, err)
		}
	}
}

// BenchmarkPolicyDecideUncachedProxy is the costliest route shape: a
// wildcard proxy route whose unit primitive comes from a header.
func BenchmarkPolicyDecideUncachedProxy(b *testing.B) {
	p := benchPolicy(b, -1)
	in := benchInput()
	in.Path = "/v1/proxy/anthropic/v1/messages"
	in.Headers["x-gitlab-unit-primitive"] = "duo_chat"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("%+v %v", d, err)
		}
	}
}

// BenchmarkPolicyDecideUncachedBody is a body-rule route: /v4/code/suggestions
// decides completion vs generation on prompt_components[0].type (with a
// realistic body around it: code above and below the cursor).
func BenchmarkPolicyDecideUncachedBody(b *testing.B) {
	p := benchPolicy(b, -1)
	in := benchInput()
	in.Path = "/v4/code/suggestions"
	in.Body = policy.BodyInput{Status: policy.BodyOK, Size: 2048, JSON: map[string]any{
		"prompt_components": []any{map[string]any{
			"type": "code_editor_completion",
			"payload": map[string]any{
				"file_name":            "main.go",
				"content_above_cursor": strings.Repeat("func f() {}\n", 80),
				"content_below_cursor": strings.Repeat("// end\n", 40),
				"language_identifier":  "go",
			},
		}},
	}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("%+v %v", d, err)
		}
	}
}

// BenchmarkPolicyDecideCached repeats one request: every call after the
// first is a decision-cache hit.
func BenchmarkPolicyDecideCached(b *testing.B) {
	p := benchPolicy(b, 0)
	in := benchInput()
	ctx := context.Background()
	if _, err := p.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("%+v %v", d, err)
		}
	}
	if s := p.Stats(); s.Misses != 1 {
		b.Fatalf("expected one miss, stats %+v", s)
	}
}

// BenchmarkPolicyDecideCachedParallel is the cached path under contention.
func BenchmarkPolicyDecideCachedParallel(b *testing.B) {
	p := benchPolicy(b, 0)
	ctx := context.Background()
	if _, err := p.Decide(ctx, benchInput()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := benchInput()
		for pb.Next() {
			if d, err := p.Decide(ctx, in); err != nil || !d.Allow {
				b.Fatalf("%+v %v", d, err)
			}
		}
	})
}
