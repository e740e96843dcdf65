package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/identity"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/policy/regogen"
)

func buildExample(t testing.TB, name string, opts BuildOptions) *Policy {
	t.Helper()
	m, err := manifest.Example(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(catalog.Example(), m, opts)
	if err != nil {
		t.Fatalf("Build(%s): %v", name, err)
	}
	return p
}

func caseInput(t testing.TB, c regogen.Case) *Input {
	t.Helper()
	b, err := json.Marshal(c.Input)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInputJSON(b)
	if err != nil {
		t.Fatalf("%s/%s: %v", c.Route, c.Name, err)
	}
	return in
}

// TestDecideAgreesWithGeneratedTests is the differential test: every case the
// generated `opa test` suites assert is evaluated through Decide (uncached and
// cached) and must produce the same decision.
func TestDecideAgreesWithGeneratedTests(t *testing.T) {
	for _, name := range manifest.ExampleNames() {
		t.Run(name, func(t *testing.T) {
			p := buildExample(t, name, BuildOptions{})
			cases := p.Generated().Cases
			if len(cases) < 10 {
				t.Fatalf("only %d generated cases", len(cases))
			}
			for pass := range 2 {
				for _, c := range cases {
					in := caseInput(t, c)
					// A distinct hash per case makes valid tokens cacheable.
					sum := sha256.Sum256([]byte(c.Route + "/" + c.Name))
					in.Token.Hash = hex.EncodeToString(sum[:])
					d, err := p.Decide(context.Background(), in)
					if err != nil {
						t.Fatalf("%s/%s: %v", c.Route, c.Name, err)
					}
					e := c.Expect
					if d.Allow != e.Allow || d.Status != e.Status || d.Reason != Reason(e.Reason) ||
						!reflect.DeepEqual(d.Body, e.Body) || d.Route != e.Route || d.DryRun != e.DryRun {
						t.Errorf("pass %d %s/%s: got allow=%v status=%d reason=%s body=%v route=%q dry_run=%v, want %+v",
							pass, c.Route, c.Name, d.Allow, d.Status, d.Reason, d.Body, d.Route, d.DryRun, e)
					}
					for k, v := range e.Headers {
						if d.Headers[k] != v {
							t.Errorf("%s/%s: headers[%s] = %q, want %q", c.Route, c.Name, k, d.Headers[k], v)
						}
					}
					for k, v := range e.RateLimitEntries {
						if d.RateLimit.Entries[k] != v {
							t.Errorf("%s/%s: rate_limit.entries[%s] = %q, want %q", c.Route, c.Name, k, d.RateLimit.Entries[k], v)
						}
					}
					if e.UnitPrimitives != nil && !reflect.DeepEqual(d.UnitPrimitives, e.UnitPrimitives) {
						t.Errorf("%s/%s: unit_primitives %v, want %v", c.Route, c.Name, d.UnitPrimitives, e.UnitPrimitives)
					}
				}
			}
			// The fast allow path and the full chain agree on every case.
			full, err := rego.New(rego.Query("data.ccauthz.main.full_decision"), rego.Compiler(p.compiler),
				rego.GenerateJSON(keepTerm)).PrepareForEval(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			fast, err := rego.New(rego.Query("data.ccauthz.main.fast_allow"), rego.Compiler(p.compiler),
				rego.GenerateJSON(keepTerm)).PrepareForEval(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			m, _ := manifest.Example(name)
			fixedExact := map[string]bool{}
			for _, r := range m.Routes {
				if regogen.FastKind(r) != "" {
					fixedExact[r.ID] = true
				}
			}
			fastHits := 0
			for _, c := range cases {
				in := caseInput(t, c)
				id := p.identify(in)
				v, err := in.value(&id)
				if err != nil {
					t.Fatal(err)
				}
				rs, err := full.Eval(context.Background(), rego.EvalParsedInput(v))
				if err != nil {
					t.Fatal(err)
				}
				want, err := parseResult(rs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := p.eval(context.Background(), in, &id)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s/%s: decision differs from full_decision:\n got %+v\nwant %+v", c.Route, c.Name, got, want)
				}
				if got.Reason == ReasonAllowed && fixedExact[got.Route] {
					rs, err := fast.Eval(context.Background(), rego.EvalParsedInput(v))
					if err != nil || len(rs) != 1 {
						t.Errorf("%s/%s: allowed on a fast route but fast_allow is undefined (%v)", c.Route, c.Name, err)
					} else {
						fastHits++
					}
				}
			}
			if fastHits < len(fixedExact) {
				t.Errorf("fast_allow covered %d allowed cases, want at least one per fast route (%d)", fastHits, len(fixedExact))
			}
			s := p.Stats()
			if !s.CacheEnabled || s.Hits < uint64(len(cases)) {
				t.Errorf("second pass should hit the cache: %+v", s)
			}
		})
	}
}

func aiGatewayInput() *Input {
	return &Input{
		Backend: "ai_gateway",
		Method:  "POST",
		Path:    "/v2/code/completions",
		Host:    "cloud.gitlab.com",
		Headers: map[string]string{
			"x-gitlab-authentication-type": "oidc",
			"x-gitlab-realm":               "saas",
			"x-gitlab-instance-id":         "inst-1",
			"x-gitlab-global-user-id":      "user-1",
			"x-gitlab-duo-seat-count":      "250",
			"x-ccauthz-unit-primitive":     "forged",
		},
		Token: TokenInput{
			Status: TokenValid, Reason: "ok", Issuer: "gitlab_com", Kind: "instance",
			Claims: map[string]any{
				"iss": "https://gitlab.com", "sub": "inst-1", "gitlab_realm": "saas",
				"aud": []any{"gitlab-ai-gateway"}, "scopes": []any{"complete_code", "duo_chat"},
			},
			Hash: strings.Repeat("a", 64),
		},
	}
}

func TestDecideAllowCarriesHeadersAndRateLimit(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	d, err := p.Decide(context.Background(), aiGatewayInput())
	if err != nil {
		t.Fatal(err)
	}
	want := Decision{
		Allow: true, Status: 200, Body: map[string]any{}, Reason: ReasonAllowed,
		Route: "code_completions_v2", UnitPrimitives: []string{"complete_code"},
		Headers: map[string]string{
			"x-ccauthz-decision": "allow", "x-ccauthz-route": "code_completions_v2",
			"x-ccauthz-unit-primitive": "complete_code", "x-ccauthz-issuer": "gitlab_com",
			"x-ccauthz-subject": "inst-1", "x-ccauthz-realm": "saas",
		},
		HeadersToRemove: []string{},
		ResponseHeaders: map[string]string{},
		RateLimit: RateLimit{
			Entries: map[string]string{
				"backend": "ai_gateway", "unit_primitive": "complete_code", "instance_id": "inst-1",
				"global_user_id": "user-1", "realm": "saas", "seat_bucket": "medium", "rate_class": "code_suggestions",
			},
			Limit: &LimitOverride{RequestsPerUnit: 60, Unit: "minute"},
		},
		Identity: identity.Identity{
			InstanceID:   identity.Value{Value: "inst-1", From: identity.FromClaim, Claim: "sub"},
			GlobalUserID: identity.Value{Value: "user-1", From: identity.FromHeader},
			Realm:        identity.Value{Value: "saas", From: identity.FromClaim, Claim: "gitlab_realm"},
			SeatBucket:   identity.Value{Value: "medium", From: identity.FromHeader},
			Subject:      "inst-1", ClaimRealm: "saas",
		},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("decision\n got %+v\nwant %+v", d, want)
	}
}

func TestDecideDenials(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	tests := []struct {
		name    string
		mutate  func(in *Input)
		status  int
		reason  Reason
		body    map[string]any
		www     string
		entries map[string]string // subset
	}{
		{
			name:   "scope missing",
			mutate: func(in *Input) { in.Token.Claims["scopes"] = []any{"duo_chat"} },
			status: 403, reason: ReasonInsufficientScope,
			body: map[string]any{"detail": "Unauthorized to access code completions"},
			www:  `Bearer error="insufficient_scope", scope="complete_code"`,
		},
		{
			name:   "realm header mismatch",
			mutate: func(in *Input) { in.Headers["x-gitlab-realm"] = "self-managed" },
			status: 401, reason: ReasonHeaderMismatch,
			body: map[string]any{"error": "Header mismatch 'X-Gitlab-Realm'"},
			www:  `Bearer error="invalid_token"`,
		},
		{
			name: "user token binds sub to the global user id",
			mutate: func(in *Input) {
				in.Token.Kind = "user"
				in.Token.Claims["sub"] = "someone-else"
			},
			status: 401, reason: ReasonHeaderMismatch,
			body: map[string]any{"error": "Header mismatch 'X-Gitlab-Global-User-Id'"},
			www:  `Bearer error="invalid_token"`,
		},
		{
			name: "keys unavailable is an outage, not the caller's fault",
			mutate: func(in *Input) {
				in.Token = TokenInput{Status: TokenUnavailable, Reason: "keys_unavailable", Hash: in.Token.Hash}
			},
			status: 503, reason: ReasonKeysUnavailable,
			body: map[string]any{"error": "Authentication keys unavailable"},
		},
		{
			name:   "unknown path",
			mutate: func(in *Input) { in.Path = "/v9/nothing" },
			status: 404, reason: ReasonNoRoute,
			body:    map[string]any{"detail": "Not Found"},
			entries: map[string]string{"unit_primitive": "none", "rate_class": "none"},
		},
		{
			name: "seat count buckets",
			mutate: func(in *Input) {
				in.Headers["x-gitlab-duo-seat-count"] = "5000"
				in.Token.Claims["scopes"] = []any{}
			},
			status: 403, reason: ReasonInsufficientScope,
			body:    map[string]any{"detail": "Unauthorized to access code completions"},
			www:     `Bearer error="insufficient_scope", scope="complete_code"`,
			entries: map[string]string{"seat_bucket": "large"},
		},
		{
			name: "missing token keeps rate-limit entries as strings",
			mutate: func(in *Input) {
				in.Token = TokenInput{Status: TokenMissing, Reason: "missing_authorization"}
				in.Headers = map[string]string{"x-gitlab-duo-seat-count": "abc"}
			},
			status: 401, reason: ReasonMissingAuthorization,
			body: map[string]any{"error": "No authorization header presented"},
			www:  `Bearer error="invalid_token"`,
			entries: map[string]string{
				"instance_id": "unknown", "global_user_id": "unknown", "realm": "unknown", "seat_bucket": "any",
				"unit_primitive": "complete_code", "rate_class": "code_suggestions",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := aiGatewayInput()
			tt.mutate(in)
			d, err := p.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || d.Status != tt.status || d.Reason != tt.reason || !reflect.DeepEqual(d.Body, tt.body) {
				t.Fatalf("got %v %d %s %v, want deny %d %s %v", d.Allow, d.Status, d.Reason, d.Body, tt.status, tt.reason, tt.body)
			}
			if got := d.ResponseHeaders["www-authenticate"]; got != tt.www {
				t.Errorf("www-authenticate %q, want %q", got, tt.www)
			}
			if len(d.Headers) != 0 || !reflect.DeepEqual(d.HeadersToRemove, CcauthzHeaders()) {
				t.Errorf("a denial sets no upstream headers and removes all ccauthz ones: %v %v", d.Headers, d.HeadersToRemove)
			}
			for k, v := range tt.entries {
				if d.RateLimit.Entries[k] != v {
					t.Errorf("rate_limit.entries[%s] = %q, want %q", k, d.RateLimit.Entries[k], v)
				}
			}
			if len(d.RateLimit.Entries) != 7 {
				t.Errorf("rate_limit.entries must always carry 7 keys: %v", d.RateLimit.Entries)
			}
		})
	}
}

func TestCacheKeysOnWhatThePolicyReads(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	s := p.Stats()
	if !s.CacheEnabled {
		t.Fatalf("cache should be enabled: %s", s.CacheDisabledReason)
	}
	if want := []string{"x-gitlab-authentication-type", "x-gitlab-feature-enablement-type", "x-gitlab-unit-primitive"}; !reflect.DeepEqual(s.HeadersRead, want) {
		t.Errorf("HeadersRead %v, want %v (identity headers are not keyed on)", s.HeadersRead, want)
	}
	if want := []string{"x-gitlab-global-user-id", "x-gitlab-instance-id", "x-gitlab-realm"}; !reflect.DeepEqual(s.HeadersBound, want) {
		t.Errorf("HeadersBound %v, want %v", s.HeadersBound, want)
	}
	if contains(s.HeadersRead, "user-agent") || s.ReadsQuery || s.ReadsHost {
		t.Errorf("policy reads more than it should: %+v", s)
	}
	ctx := context.Background()
	in := aiGatewayInput()
	first, _ := p.Decide(ctx, in)
	// A header the policy does not read: same key, a cache hit.
	in.Headers["user-agent"] = "curl"
	in.Host = "other.example"
	if d, _ := p.Decide(ctx, in); !reflect.DeepEqual(d, first) || p.Stats().Hits != 1 {
		t.Fatalf("expected a cache hit with the same decision, stats %+v", p.Stats())
	}
	// A header it reads: a different key and the right (different) decision.
	in.Headers["x-gitlab-realm"] = "self-managed"
	if d, _ := p.Decide(ctx, in); d.Status != 401 || d.Reason != ReasonHeaderMismatch {
		t.Fatalf("changed bound header must not be served from the cache: %+v", d)
	}
	// The unit-primitive header decides nothing on a route with fixed unit
	// primitives: it is not in the key there. On a proxy route it is, and
	// absent differs from empty.
	delete(in.Headers, "x-gitlab-unit-primitive")
	id0 := p.identify(in)
	k1, _ := p.cacheKey(in, &id0)
	in.Headers["x-gitlab-unit-primitive"] = "duo_chat"
	if k2, _ := p.cacheKey(in, &id0); k1 != k2 {
		t.Error("the unit-primitive header is keyed on a route that never reads it")
	}
	in.Path = "/v1/proxy/anthropic/v1/messages"
	k1, _ = p.cacheKey(in, &id0)
	in.Headers["x-gitlab-unit-primitive"] = ""
	k2, _ := p.cacheKey(in, &id0)
	delete(in.Headers, "x-gitlab-unit-primitive")
	k3, _ := p.cacheKey(in, &id0)
	if k1 == k2 || k2 == k3 {
		t.Error("a proxy route's unit-primitive header is not keyed (absent, empty, a value)")
	}
	// Mutating a returned decision does not change the cached one.
	in = aiGatewayInput()
	d, _ := p.Decide(ctx, in)
	d.Headers["x-evil"] = "1"
	d.RateLimit.Entries["realm"] = "x"
	again, _ := p.Decide(ctx, in)
	if _, ok := again.Headers["x-evil"]; ok || again.RateLimit.Entries["realm"] != "saas" {
		t.Error("cached decision was mutated through a returned copy")
	}
	// A valid token without a hash is keyed on the claims the policy reads
	// (under a policy that reads claims dynamically it is never cached:
	// TestClaimsReadDynamically).
	in.Token.Hash = ""
	before := p.Stats()
	p.Decide(ctx, in)
	if s := p.Stats(); s.Uncacheable != before.Uncacheable || s.Hits != before.Hits+1 {
		t.Errorf("valid token without hash: %+v, want a hit on its claims", s)
	}
}

func TestCacheIsBounded(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: 3})
	ctx := context.Background()
	for i := range 5 {
		in := aiGatewayInput()
		in.Token.Claims["iss"] = fmt.Sprintf("https://issuer-%d.example", i)
		p.Decide(ctx, in)
	}
	s := p.Stats()
	if s.CacheEntries != 3 || s.Evictions != 2 || s.CacheCapacity != 3 {
		t.Errorf("stats %+v", s)
	}
	off := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	if off.Stats().CacheEnabled || off.Stats().CacheDisabledReason != "disabled by configuration" {
		t.Errorf("stats %+v", off.Stats())
	}
}

func writeExtra(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExtraModulesOnlyRestrict(t *testing.T) {
	dir := writeExtra(t, map[string]string{
		"deny_self_managed.rego": `package ccauthz.extra

deny contains "Self-managed instances are not served here" if {
	input.token.claims.gitlab_realm == "self-managed"
}
`,
		"ignored_test.rego": "package something.else\n",
	})
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
	ctx := context.Background()
	if d, _ := p.Decide(ctx, aiGatewayInput()); !d.Allow {
		t.Fatalf("saas request should stay allowed: %+v", d)
	}
	in := aiGatewayInput()
	in.Token.Claims["gitlab_realm"] = "self-managed"
	in.Headers["x-gitlab-realm"] = "self-managed"
	in.Token.Hash = strings.Repeat("b", 64)
	d, _ := p.Decide(ctx, in)
	if d.Allow || d.Status != 403 || d.Reason != ReasonExtraPolicyDeny ||
		d.Body["detail"] != "Self-managed instances are not served here" {
		t.Fatalf("extra deny not applied: %+v", d)
	}
	// An extra deny never turns a denial into something else.
	in.Token.Claims["scopes"] = []any{}
	in.Token.Hash = strings.Repeat("c", 64)
	if d, _ := p.Decide(ctx, in); d.Reason != ReasonInsufficientScope {
		t.Fatalf("denial changed by extra module: %+v", d)
	}
	if p.Revision() == buildExample(t, "ai_gateway", BuildOptions{}).Revision() {
		t.Error("extra modules must change the revision")
	}
}

func TestExtraModuleWrongPackageRejected(t *testing.T) {
	dir := writeExtra(t, map[string]string{"allow_all.rego": "package ccauthz.main\n\ndecision := {\"allow\": true}\n"})
	m, _ := manifest.Example("ai_gateway")
	_, err := Build(catalog.Example(), m, BuildOptions{ExtraDir: dir})
	if !errors.Is(err, ErrExtraPackage) || !strings.Contains(err.Error(), "allow_all.rego") {
		t.Fatalf("want ErrExtraPackage naming the file, got %v", err)
	}
}

func TestCacheDisabledForDynamicReads(t *testing.T) {
	tests := map[string]string{
		"variable header": `package ccauthz.extra

deny contains "bad" if {
	some name, v in input.request.headers
	startswith(name, "x-debug")
	v != ""
}
`,
		"time": `package ccauthz.extra

deny contains "late" if time.now_ns() < 0
`,
	}
	tests["header object in a variable"] = `package ccauthz.extra

deny contains "bad" if {
	h := input.request.headers
	h["x-debug"] == "1"
}
`
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src}),
				AllowBuiltins: []string{"time.now_ns"}})
			s := p.Stats()
			if s.CacheEnabled || !strings.Contains(s.CacheDisabledReason, "x.rego") {
				t.Fatalf("cache should be disabled naming x.rego: %+v", s)
			}
			if d, err := p.Decide(context.Background(), aiGatewayInput()); err != nil || !d.Allow {
				t.Fatalf("decision %+v, %v", d, err)
			}
		})
	}
}

func TestCacheAcceptsConstantObjectGet(t *testing.T) {
	src := `package ccauthz.extra

deny contains "debug requests are refused" if {
	object.get(input.request.headers, "x-debug", "") == "1"
}
`
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src})})
	s := p.Stats()
	if !s.CacheEnabled || !contains(s.HeadersRead, "x-debug") {
		t.Fatalf("object.get with a constant key should keep the cache and key on x-debug: %+v", s)
	}
	ctx := context.Background()
	in := aiGatewayInput()
	if d, _ := p.Decide(ctx, in); !d.Allow {
		t.Fatalf("%+v", d)
	}
	in.Headers["x-debug"] = "1"
	if d, _ := p.Decide(ctx, in); d.Allow || d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("x-debug must be part of the cache key: %+v", d)
	}
}

func TestDecideFailsClosed(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := p.Decide(ctx, aiGatewayInput())
	if err == nil || d.Allow || d.Reason != ReasonDeadlineExceeded || d.Status != 503 {
		t.Fatalf("cancelled context: %+v %v", d, err)
	}
	d, err = p.Decide(context.Background(), nil)
	if err == nil || d.Allow || d.Reason != ReasonInternalError {
		t.Fatalf("nil input: %+v %v", d, err)
	}
}

func TestBuildRejectsInvalidManifest(t *testing.T) {
	m, err := manifest.Parse("bad.yaml", []byte("backend: nope\nroutes:\n  - {id: a, methods: [GET], path: /a, unit_primitives: [no_such_up]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(catalog.Example(), m, BuildOptions{})
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `bad.yaml:1:10: backend "nope" is not in the catalog`) ||
		!strings.Contains(err.Error(), `bad.yaml:3:57: unit primitive "no_such_up" is not in the catalog`) {
		t.Fatalf("got %v", err)
	}
}

func TestCoreHeadersMatchGo(t *testing.T) {
	p := buildExample(t, "duo_workflow", BuildOptions{})
	in := &Input{Backend: "duo_workflow_service", Method: "GET", Path: "/x", Token: TokenInput{Status: TokenMissing}}
	d, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.HeadersToRemove, CcauthzHeaders()) {
		t.Errorf("core removes %v, Go lists %v", d.HeadersToRemove, CcauthzHeaders())
	}
}

func TestParseInputJSON(t *testing.T) {
	_, err := ParseInputJSON([]byte(`{"request": {"method": "GET", "path": "x", "headers": {"Authorization": "Bearer t"}}, "token": {"status": "ok"}}`))
	for _, want := range []string{"authorization", `request.path "x"`, `token.status "ok"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should mention %s", err, want)
		}
	}
	if _, err := ParseInputJSON([]byte(`{"bogus": 1}`)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field: %v", err)
	}
	in, err := ParseInputJSON([]byte(`{"request": {"method": "GET", "path": "/x", "headers": {"X-Gitlab-Realm": "saas"}}, "token": {"status": "missing"}}`))
	if err != nil || in.Headers["x-gitlab-realm"] != "saas" {
		t.Errorf("%+v %v", in, err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestCacheKeysOnGrant: the core and generated modules never read a
// per-token claim, so a fresh token of the same grant (new jti, iat, exp —
// GitLab.com mints one per request) reuses the decision, while a different
// grant does not. An extra module that reads input.token turns this off.
func TestCacheKeysOnGrant(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	if s := p.Stats(); !s.GrantKeyed {
		t.Fatalf("the example policy should key on the grant: %s", s.GrantKeyWhyNot)
	}
	ctx := context.Background()
	in := aiGatewayInput()
	in.Token.GrantDigest = strings.Repeat("1", 64)
	first, _ := p.Decide(ctx, in)

	// A different token (hash) of the same grant: a hit, the same decision.
	in.Token.Hash = strings.Repeat("d", 64)
	in.Token.Claims["jti"] = "another"
	if d, _ := p.Decide(ctx, in); !reflect.DeepEqual(d, first) || p.Stats().Hits != 1 {
		t.Fatalf("fresh token of the same grant missed the cache: %+v", p.Stats())
	}
	// A different grant (fewer scopes): its own decision.
	in.Token.GrantDigest = strings.Repeat("2", 64)
	in.Token.Claims["scopes"] = []any{}
	if d, _ := p.Decide(ctx, in); d.Allow || d.Reason != ReasonInsufficientScope {
		t.Fatalf("a different grant was served another grant's decision: %+v", d)
	}

	dir := writeExtra(t, map[string]string{"jti.rego": `package ccauthz.extra

deny contains "replayed" if input.token.claims.jti == "replayed"
`})
	withExtra := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
	s := withExtra.Stats()
	if s.GrantKeyed || !strings.Contains(s.GrantKeyWhyNot, "jti.rego reads input.token") {
		t.Fatalf("an extra module reading the token must switch grant keys off: %+v", s)
	}
	// And then the per-token claim is honoured even for one grant.
	in = aiGatewayInput()
	in.Token.GrantDigest = strings.Repeat("1", 64)
	withExtra.Decide(ctx, in)
	in.Token.Hash = strings.Repeat("e", 64)
	in.Token.Claims["jti"] = "replayed"
	if d, _ := withExtra.Decide(ctx, in); d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("per-token claim ignored under grant keys: %+v", d)
	}
}
