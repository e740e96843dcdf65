package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	corerego "github.com/ccauthz/ccauthz/policy/rego"
)

// instanceInput is aiGatewayInput for another instance: its own sub,
// gitlab_instance_id, realm and (bound) headers, the same scopes and issuer.
func instanceInput(sub, realm string) *Input {
	in := aiGatewayInput()
	in.Token.Claims["sub"] = sub
	in.Token.Claims["gitlab_instance_id"] = sub
	in.Token.Claims["gitlab_realm"] = realm
	in.Token.Claims["jti"] = "jti-" + sub
	in.Token.Hash = fmt.Sprintf("%064x", sha256.Sum256([]byte(sub+"/"+realm)))
	in.Headers["x-gitlab-instance-id"] = sub
	in.Headers["x-gitlab-realm"] = realm
	in.Headers["x-gitlab-global-user-id"] = "user-of-" + sub
	return in
}

func TestClaimsRead(t *testing.T) {
	for _, name := range []string{"ai_gateway", "duo_workflow"} {
		s := buildExample(t, name, BuildOptions{}).Stats()
		if !s.ClaimsKeyed || !reflect.DeepEqual(s.ClaimsRead, []string{"iss", "scopes"}) || s.ClaimsKeyWhyNot != "" {
			t.Errorf("%s: claims keyed %v on %v (%s), want iss and scopes only", name, s.ClaimsKeyed, s.ClaimsRead, s.ClaimsKeyWhyNot)
		}
	}
}

// TestInstancesShareOneEntry: two instances with the same grant of scopes
// share one decision; each gets its own subject, realm and identity, the
// same as it would get without the cache.
func TestInstancesShareOneEntry(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	off := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	ctx := context.Background()
	a, b := instanceInput("inst-a", "saas"), instanceInput("inst-b", "self-managed")
	da, err := p.Decide(ctx, a)
	if err != nil || !da.Allow {
		t.Fatalf("%+v %v", da, err)
	}
	db, _ := p.Decide(ctx, b)
	if s := p.Stats(); s.Misses != 1 || s.Hits != 1 || s.CacheEntries != 1 {
		t.Fatalf("two instances of one grant: %+v, want one entry, one miss and one hit", s)
	}
	for _, tc := range []struct {
		in  *Input
		got Decision
		sub string
	}{{a, da, "inst-a"}, {b, db, "inst-b"}} {
		want, _ := off.Decide(ctx, tc.in)
		if !reflect.DeepEqual(tc.got, want) {
			t.Errorf("%s: cached\n%+v\nuncached\n%+v", tc.sub, tc.got, want)
		}
		if tc.got.Headers["x-ccauthz-subject"] != tc.sub || tc.got.Headers["x-ccauthz-realm"] != tc.in.Headers["x-gitlab-realm"] ||
			tc.got.RateLimit.Entries["instance_id"] != tc.sub || tc.got.Identity.Subject != tc.sub {
			t.Errorf("%s got another instance's identity: %+v", tc.sub, tc.got)
		}
	}
	// Different scopes, or another issuer claim: their own entries.
	c := instanceInput("inst-c", "saas")
	c.Token.Claims["scopes"] = []any{"duo_chat"}
	if d, _ := p.Decide(ctx, c); d.Allow || d.Reason != ReasonInsufficientScope {
		t.Fatalf("fewer scopes served another grant's decision: %+v", d)
	}
	e := instanceInput("inst-e", "saas")
	e.Token.Claims["iss"] = "https://self-managed.example"
	p.Decide(ctx, e)
	if s := p.Stats(); s.Misses != 3 || s.CacheEntries != 3 {
		t.Fatalf("scopes and iss must key the cache: %+v", s)
	}
}

// compileCoreAnd compiles the core module with one extra module (no
// generated module, no query preparation): enough for the analysis, and
// much cheaper than Build.
func compileCoreAnd(t *testing.T, src string) *ast.Compiler {
	t.Helper()
	mods := map[string]*ast.Module{}
	for name, text := range map[string]string{corerego.CoreFile: corerego.Core(), "x.rego": src} {
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = m
	}
	c := ast.NewCompiler()
	if c.Compile(mods); c.Failed() {
		t.Fatal(c.Errors)
	}
	return c
}

// TestExtraModuleClaimReads: an extra module that reads a claim by a constant
// name puts that claim into the key; a dynamic read of the claims falls back
// (to the token hash, being in an extra module).
func TestExtraModuleClaimReads(t *testing.T) {
	const pkg = "package ccauthz.extra\n\n"
	keyed := map[string]string{
		"dot":          `deny contains "x" if input.token.claims.c1 == "b"`,
		"brackets":     `deny contains "x" if input.token.claims["c1"] == "b"`,
		"object.get":   `deny contains "x" if object.get(input.token.claims, "c1", "") == "b"`,
		"local":        "deny contains \"x\" if {\n\tc := input.token.claims\n\tc.c1 == \"b\"\n}",
		"core's rule":  `deny contains "x" if data.ccauthz.main.claims.c1 == "b"`,
		"own rule":     "c := input.token.claims\n\ndeny contains \"x\" if c.c1 == \"b\"",
		"rule of rule": "c := data.ccauthz.main.claims\n\nd := c\n\ndeny contains \"x\" if d.c1 == \"b\"",
		"is_object":    "deny contains \"x\" if {\n\tc := input.token.claims\n\tis_object(c)\n\tc.c1 == \"b\"\n}",
	}
	for name, src := range keyed {
		claims, dynamic, _ := analyseClaims(compileCoreAnd(t, pkg+src+"\n"), []string{"x.rego"})
		if dynamic != "" || !reflect.DeepEqual(claims, []string{"c1", "iss", "scopes"}) {
			t.Errorf("%s: claims %v (%s), want c1, iss and scopes", name, claims, dynamic)
		}
	}
	dynamic := map[string]string{
		"variable name":     "deny contains \"x\" if {\n\tsome k\n\tinput.token.claims[k] == \"inst-b\"\n}",
		"iteration":         "deny contains \"x\" if {\n\tsome v in input.token.claims\n\tv == \"inst-b\"\n}",
		"whole claims":      `deny contains "x" if count(input.token.claims) > 100`,
		"whole token":       "deny contains \"x\" if {\n\tt := input.token\n\tt.claims.sub == \"inst-b\"\n}",
		"function argument": "f(c) := c.sub\n\ndeny contains \"x\" if f(input.token.claims) == \"inst-b\"",
		"core's whole rule": `deny contains "x" if count(data.ccauthz.main.claims) > 100`,
		"local passed on":   "deny contains \"x\" if {\n\tc := input.token.claims\n\tobject.keys(c)[_] == \"x\"\n}",
		"object.get by var": "deny contains \"x\" if {\n\tsome k in [\"sub\"]\n\tobject.get(input.token.claims, k, \"\") == \"inst-b\"\n}",
	}
	for name, src := range dynamic {
		claims, why, inExtra := analyseClaims(compileCoreAnd(t, pkg+src+"\n"), []string{"x.rego"})
		if claims != nil || !strings.HasPrefix(why, "x.rego") || !inExtra {
			t.Errorf("%s: claims %v, why %q, in extra %v: want a fallback naming x.rego", name, claims, why, inExtra)
		}
	}
	// Through the whole check: the claim an extra module reads keys the cache.
	ctx := context.Background()
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{
		"x.rego": pkg + "deny contains \"x\" if {\n\tc := input.token.claims\n\tc.sub == \"inst-b\"\n}\n"})})
	if s := p.Stats(); !s.ClaimsKeyed || !reflect.DeepEqual(s.ClaimsRead, []string{"iss", "scopes", "sub"}) {
		t.Fatalf("claims keyed %v on %v (%s)", s.ClaimsKeyed, s.ClaimsRead, s.ClaimsKeyWhyNot)
	}
	if d, _ := p.Decide(ctx, instanceInput("inst-a", "saas")); !d.Allow {
		t.Fatalf("inst-a: %+v", d)
	}
	if d, _ := p.Decide(ctx, instanceInput("inst-b", "saas")); d.Allow || d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("inst-b was served inst-a's decision: %+v", d)
	}
}

// TestBindingOutcomeKeyedWhenExtraReadsBoundHeaders is a regression test:
// an extra module that reads every bound header took them out of the
// binding-only headers, and with them the bindings' outcome out of the key,
// while the bound claims (left out of the claim key for the bindings) were
// never in it: a token whose realm claim contradicts the header was served
// the allow of a token whose realm matched.
func TestBindingOutcomeKeyedWhenExtraReadsBoundHeaders(t *testing.T) {
	ctx := context.Background()
	extra := map[string]string{"x.rego": "package ccauthz.extra\n\n" +
		"deny contains \"x\" if input.request.headers[\"x-gitlab-realm\"] == \"none\"\n" +
		"deny contains \"x\" if input.request.headers[\"x-gitlab-instance-id\"] == \"none\"\n" +
		"deny contains \"x\" if input.request.headers[\"x-gitlab-global-user-id\"] == \"none\"\n"}
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, extra)})
	off := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1, ExtraDir: writeExtra(t, extra)})
	a := instanceInput("inst-a", "saas")
	if d, err := p.Decide(ctx, a); err != nil || !d.Allow {
		t.Fatalf("matching realm: %+v %v", d, err)
	}
	b := instanceInput("inst-a", "saas")
	b.Token.Claims["gitlab_realm"] = "self-managed" // the header still says saas
	b.Token.Hash = strings.Repeat("b", 64)
	want, _ := off.Decide(ctx, b)
	if want.Allow || want.Reason != ReasonHeaderMismatch {
		t.Fatalf("uncached: %+v, want a header_mismatch denial", want)
	}
	if got, _ := p.Decide(ctx, b); got.Allow || got.Reason != want.Reason {
		t.Fatalf("a contradicting realm was served the matching token's decision: %+v", got)
	}
}

// TestPerTokenClaimThroughTheCoreRule is a regression test: an extra module
// that reads the claims dynamically through the core's claims rule
// (data.ccauthz.main.claims) can see jti, which the grant digest leaves out;
// before, such a policy still keyed on the grant, so a revoked jti was
// served the decision of another token of the same grant.
func TestPerTokenClaimThroughTheCoreRule(t *testing.T) {
	src := `package ccauthz.extra

deny contains "replayed" if {
	some k, v in data.ccauthz.main.claims
	k == "jti"
	v == "replayed"
}
`
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"jti.rego": src})})
	if s := p.Stats(); s.ClaimsKeyed || s.GrantKeyed || !strings.Contains(s.GrantKeyWhyNot, "jti.rego") {
		t.Fatalf("a dynamic claim read in an extra module must key on the token hash: %+v", s)
	}
	ctx := context.Background()
	in := aiGatewayInput()
	in.Token.GrantDigest = strings.Repeat("1", 64)
	if d, _ := p.Decide(ctx, in); !d.Allow {
		t.Fatalf("%+v", d)
	}
	in.Token.Hash = strings.Repeat("e", 64)
	in.Token.Claims["jti"] = "replayed"
	if d, _ := p.Decide(ctx, in); d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("a replayed jti of the same grant was served the cached allow: %+v", d)
	}
}

// TestClaimsReadDynamically: under a policy whose claim reads cannot be
// pinned down, a valid token without a hash is never cached.
func TestClaimsReadDynamically(t *testing.T) {
	src := "package ccauthz.extra\n\ndeny contains \"x\" if count(input.token.claims) > 100\n"
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src})})
	in := aiGatewayInput()
	in.Token.Hash = ""
	if d, _ := p.Decide(context.Background(), in); !d.Allow || p.Stats().Uncacheable != 1 {
		t.Fatalf("valid token without hash under dynamic claim reads: %+v %+v", d, p.Stats())
	}
}

// countingKeys is a ClaimKeys that counts its calls.
type countingKeys struct {
	calls int
	key   string
}

func (c *countingKeys) ClaimSetKey([]string) (string, bool) { c.calls++; return c.key, true }

func TestClaimKeysFromTheTokenLayer(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	in := aiGatewayInput()
	ck := &countingKeys{key: "precomputed"}
	in.Token.ClaimKeys = ck
	id := p.identify(in)
	k, ok := p.cacheKey(in, &id)
	if !ok || ck.calls != 1 || !strings.Contains(k, "kprecomputed") {
		t.Fatalf("key %q (%v) after %d calls: want the token layer's claim key", k, ok, ck.calls)
	}
}

// digestKeys is a ClaimKeys that also computes the grant digest on demand,
// as the verifier's claims do, and counts both.
type digestKeys struct {
	countingKeys
	digests int
}

func (d *digestKeys) GrantDigest() string { d.digests++; return strings.Repeat("7", 64) }

// TestGrantDigestOnDemand: the grant digest is asked of the token layer only
// when the key needs it (the policy reads claims dynamically and is grant
// keyed), and a digest given in the input wins.
func TestGrantDigestOnDemand(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	in := aiGatewayInput()
	dk := &digestKeys{countingKeys: countingKeys{key: "precomputed"}}
	in.Token.ClaimKeys = dk
	id := p.identify(in)
	if _, ok := p.cacheKey(in, &id); !ok || dk.digests != 0 {
		t.Fatalf("claims-keyed policy asked for the grant digest %d times", dk.digests)
	}
	if !p.grantKeyed {
		t.Fatal("the example policy should be grant keyed")
	}
	p.reads.claimsDynamic = "a test's dynamic claim read"
	k, ok := p.cacheKey(in, &id)
	if !ok || dk.digests != 1 || !strings.Contains(k, "g"+strings.Repeat("7", 64)) {
		t.Fatalf("key %q (%v), %d digests: want the on-demand grant digest", k, ok, dk.digests)
	}
	in.Token.GrantDigest = strings.Repeat("1", 64)
	if k, _ := p.cacheKey(in, &id); dk.digests != 1 || !strings.Contains(k, "g"+strings.Repeat("1", 64)) {
		t.Fatalf("key %q: the input's digest must win without asking", k)
	}
}

// TestClaimKeyProperty: across many random combinations of token, claims and
// headers, whenever two inputs share a cache key their uncached decisions
// (identity filled in) are identical, for the example policy and for one
// whose extra module reads a claim.
func TestClaimKeyProperty(t *testing.T) {
	extra := writeExtra(t, map[string]string{"x.rego": `package ccauthz.extra

deny contains "instance b" if input.token.claims.gitlab_instance_id == "inst-b"
`})
	for _, opts := range []BuildOptions{{}, {ExtraDir: extra}} {
		cached := buildExample(t, "ai_gateway", opts)
		off := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: opts.ExtraDir, CacheSize: -1})
		rng := rand.New(rand.NewPCG(13, uint64(len(opts.ExtraDir))))
		pick := func(xs ...any) any { return xs[rng.IntN(len(xs))] }
		absent := struct{}{}
		set := func(m map[string]any, k string, v any) {
			if v != absent {
				m[k] = v
			}
		}
		setH := func(m map[string]string, k string, v any) {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		groups := map[string]Decision{}
		shared := 0
		ctx := context.Background()
		for i := range 160 {
			in := aiGatewayInput()
			in.Path = pick("/v2/code/completions", "/v2/code/completions", "/v1/proxy/anthropic/v1/messages").(string)
			in.Token.Status = pick(TokenValid, TokenValid, TokenValid, TokenValid, TokenValid, TokenInvalid).(string)
			in.Token.Kind = pick("instance", "instance", "instance", "user").(string)
			in.Token.Hash = fmt.Sprintf("%064x", i)
			// The identity claims and headers vary freely; what decides
			// (scopes, iss, whether the bound headers match) less so.
			c := map[string]any{"aud": []any{"gitlab-ai-gateway"}, "jti": fmt.Sprint(i)}
			set(c, "iss", pick("https://gitlab.com", "https://gitlab.com", "https://self-managed.example"))
			set(c, "sub", pick("inst-a", "inst-b", "inst-c", "", absent, float64(1)))
			set(c, "gitlab_instance_id", pick("inst-a", "inst-b", "inst-c", absent))
			set(c, "gitlab_realm", pick("saas", "self-managed", absent, nil))
			set(c, "duo_seat_count", pick(float64(5), float64(500), absent))
			set(c, "scopes", pick([]any{"complete_code", "duo_chat"}, []any{"duo_chat", "complete_code"},
				[]any{"complete_code", "duo_chat"}, []any{"duo_chat"}, absent))
			in.Token.Claims = c
			h := map[string]string{}
			setH(h, "x-gitlab-authentication-type", pick("oidc", "oidc", "oidc", "oidc", "oidc", absent))
			matching := func(claim string, others ...any) any {
				if v, ok := c[claim].(string); ok && rng.IntN(5) > 0 {
					return v
				}
				return pick(others...)
			}
			setH(h, "x-gitlab-instance-id", matching("gitlab_instance_id", "inst-a", "inst-b", absent))
			if in.Token.Kind == "user" {
				setH(h, "x-gitlab-global-user-id", matching("sub", "u1", "u2", absent))
			} else {
				setH(h, "x-gitlab-global-user-id", pick("u1", "u2", "u3", absent))
				if _, ok := c["gitlab_instance_id"]; !ok {
					setH(h, "x-gitlab-instance-id", matching("sub", "inst-a", absent))
				}
			}
			setH(h, "x-gitlab-realm", matching("gitlab_realm", "saas", "self-managed", absent))
			setH(h, "x-gitlab-duo-seat-count", pick("5", "5000", absent))
			setH(h, "x-gitlab-unit-primitive", pick("complete_code", "complete_code", "duo_chat"))
			in.Headers = h
			id := cached.identify(in)
			key, ok := cached.cacheKey(in, &id)
			if !ok {
				t.Fatalf("input %d not cacheable", i)
			}
			d, err := off.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := cached.Decide(ctx, in); !reflect.DeepEqual(got, d) {
				t.Fatalf("input %d: cached\n%+v\nuncached\n%+v", i, got, d)
			}
			// The decision as if served from the cache entry of the first
			// input with this key: the policy's output, identity refilled.
			if first, ok := groups[key]; ok {
				shared++
				first = first.clone()
				fillIdentity(&first, &id)
				if !reflect.DeepEqual(first, d) {
					t.Fatalf("input %d shares key %q with an input of another decision:\n got %+v\nwant %+v", i, key, first, d)
				}
				continue
			}
			groups[key] = d
		}
		t.Logf("%d of 160 inputs shared a key, in %d groups", shared, len(groups))
		if shared < 15 || len(groups) < 15 {
			t.Errorf("only %d of 160 inputs shared a key, in %d groups: the property was hardly exercised", shared, len(groups))
		}
		if s := cached.Stats(); !slices.Equal(s.ClaimsRead, map[bool][]string{true: {"iss", "scopes"}, false: {"gitlab_instance_id", "iss", "scopes"}}[opts.ExtraDir == ""]) {
			t.Errorf("claims read %v", s.ClaimsRead)
		}
	}
}

// TestExtraModuleReadingIdentityThroughTheCore is a regression test: the
// subject is the identity step's now, so an extra module that reads
// data.ccauthz.main.subject (or the core's identity or rate-limit entries)
// decides on the identity and must key on it, as a read of input.identity
// does.
func TestExtraModuleReadingIdentityThroughTheCore(t *testing.T) {
	for ref, want := range map[string]bool{
		"data.ccauthz.main.subject": true, "data.ccauthz.main.claim_realm": true,
		"data.ccauthz.main.identity.instance_id": true, "data.ccauthz.main.rate_limit.entries.instance_id": true,
		"data.ccauthz.main.route_id": false, // does not depend on the identity
	} {
		src := "package ccauthz.extra\n\ndeny contains \"b\" if " + ref + " == \"inst-b\"\n"
		if got, why := readsIdentityThroughCore(compileCoreAnd(t, src), []string{"x.rego"}); got != want {
			t.Errorf("%s: reads the identity %v (%s), want %v", ref, got, why, want)
		}
	}
	ctx := context.Background()
	src := "package ccauthz.extra\n\ndeny contains \"b\" if data.ccauthz.main.subject == \"inst-b\"\n"
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src})})
	if !p.Stats().ReadsIdentity {
		t.Fatalf("the subject must put the identity into the key: %+v", p.Stats())
	}
	if d, _ := p.Decide(ctx, instanceInput("inst-a", "saas")); !d.Allow {
		t.Fatalf("inst-a: %+v", d)
	}
	if d, _ := p.Decide(ctx, instanceInput("inst-b", "saas")); d.Allow || d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("inst-b was served inst-a's decision: %+v", d)
	}
}
