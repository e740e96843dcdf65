package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	mrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/identity"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/policy/route"
)

// keysManifest has what the example manifests lack: {param}s named
// by 403 details (on a pattern with a wildcard too), an authenticate-only route whose 403
// detail falls back to the unit-primitive header, a dry-run route with a
// param, and a proxy route with a detail.
const keysManifest = `backend: ai_gateway
routes:
  - {id: named, methods: [POST], path: '/n/{a}/{b}', unit_primitives: [duo_chat], detail: 'no {b} for {unit_primitive}'}
  - {id: unnamed, methods: [POST], path: '/n/{a}/{b}/x', unit_primitives: [duo_chat]}
  - {id: rest_named, methods: [POST], path: '/r/{a}/*', unit_primitives: [duo_chat], detail: 'no {a}'}
  - {id: auth_only, methods: [POST], path: /auth, authenticate_only: true, disallowed_issuers: [gitlab-ai-gateway]}
  - {id: dry, methods: [POST, GET], path: '/dry/{x}', unit_primitives: [duo_chat], dry_run: true}
  - {id: proxy, methods: [POST], path: '/p/*', unit_primitive_header: {allow: [duo_chat, explain_code]}, detail: '{unit_primitive} here'}
  - {id: open, methods: [GET], path: /open, public: true}
`

type keyedPolicy struct {
	p *Policy
	m *manifest.Manifest
}

// keyedPolicies are the policies the safety net runs on, without a cache.
func keyedPolicies(t *testing.T) map[string]keyedPolicy {
	out := map[string]keyedPolicy{}
	for _, name := range append(manifest.ExampleNames(), "keys") {
		var m *manifest.Manifest
		var err error
		if name == "keys" {
			m, err = manifest.Parse("keys.yaml", []byte(keysManifest), catalog.Example())
		} else if m, err = manifest.Example(name); err == nil {
			m, err = m.Bind(catalog.Example())
		}
		if err != nil {
			t.Fatal(err)
		}
		p, err := Build(catalog.Example(), m, BuildOptions{CacheSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		out[name] = keyedPolicy{p, m}
	}
	return out
}

// variants mutates a base input into many: paths on the route (filled in,
// hostile, random), methods, token statuses, scopes, issuers, the
// unit-primitive header, bodies and identity headers.
type variants struct {
	rng     *mrand.Rand
	m       *manifest.Manifest
	matcher *route.Matcher
	ups     []string // catalog unit primitives and some aliases
	bodies  []BodyInput
	refuse  map[string][]string // refusal header → values
	prompts []string
}

func (v *variants) pick(xs []string) string { return xs[v.rng.IntN(len(xs))] }

func (v *variants) word() string {
	hostile := []string{"{a}", "{b}", "{prompt_id}", "{unit_primitive}", "..", "%2F", "x y", "\xff", "ä"}
	if v.rng.IntN(4) == 0 {
		return v.pick(hostile)
	}
	const letters = "abcxyz019-_."
	b := make([]byte, 1+v.rng.IntN(6))
	for i := range b {
		b[i] = letters[v.rng.IntN(len(letters))]
	}
	return string(b)
}

func (v *variants) path(r *manifest.Route) string {
	if r == nil || v.rng.IntN(8) == 0 {
		return "/" + v.word() + "/" + v.word()
	}
	var parts []string
	for _, s := range r.Segments {
		switch s.Kind {
		case manifest.SegLiteral:
			parts = append(parts, s.Value)
		case manifest.SegParam:
			parts = append(parts, v.word())
		case manifest.SegWildcard:
			if r.Prompt && len(v.prompts) > 0 && v.rng.IntN(3) > 0 {
				parts = append(parts, v.pick(v.prompts))
				continue
			}
			for range 1 + v.rng.IntN(2) {
				parts = append(parts, v.word())
			}
		}
	}
	p := "/" + strings.Join(parts, "/")
	switch v.rng.IntN(10) {
	case 0:
		return p + "/"
	case 1:
		return strings.Replace(p, "/", "//", 1)
	case 2:
		return p + "/" + v.word()
	}
	return p
}

func (v *variants) mutate(base *Input) *Input {
	in := *base
	in.Headers = map[string]string{}
	for k, x := range base.Headers {
		in.Headers[k] = x
	}
	in.Token.Claims = map[string]any{}
	for k, x := range base.Token.Claims {
		in.Token.Claims[k] = x
	}
	var r *manifest.Route
	if i := v.matcher.Match(in.Method, in.Path).Route; i >= 0 {
		r = &v.m.Routes[i]
	}
	if v.rng.IntN(4) > 0 {
		in.Path = v.path(r)
	}
	if v.rng.IntN(10) == 0 {
		in.Method = v.pick([]string{"GET", "POST", "PUT", "post"})
	}
	switch v.rng.IntN(8) {
	case 0:
		delete(in.Headers, upHeader)
	case 1:
		in.Headers[upHeader] = ""
	case 2, 3:
		in.Headers[upHeader] = v.pick(v.ups)
	case 4:
		in.Headers[upHeader] = v.word()
	}
	for h, vals := range v.refuse {
		if v.rng.IntN(3) == 0 {
			in.Headers[h] = v.pick(append(vals, "other"))
		}
	}
	if v.rng.IntN(6) == 0 {
		in.Headers["x-gitlab-authentication-type"] = v.pick([]string{"oidc", "basic", ""})
	}
	// Identity headers: different callers of one grant.
	in.Headers["x-gitlab-global-user-id"] = v.word()
	in.Headers["x-gitlab-duo-seat-count"] = v.pick([]string{"1", "500", "5000", "x"})
	if len(v.bodies) > 0 && v.rng.IntN(3) == 0 {
		in.Body = v.bodies[v.rng.IntN(len(v.bodies))]
	}
	switch v.rng.IntN(6) {
	case 0:
		in.Token = TokenInput{Status: v.pick([]string{TokenInvalid, TokenMissing, TokenMalformed, TokenUnavailable}),
			Reason: v.pick([]string{"bad_signature", "unknown_kid", ""}), Kind: in.Token.Kind}
	case 1:
		in.Token.Claims["scopes"] = []any{v.pick(v.ups), v.pick(v.ups)}
	case 2:
		in.Token.Claims["scopes"] = []any{}
	case 3:
		in.Token.Issuer = v.pick([]string{"gitlab_com", "gitlab-ai-gateway"})
		in.Token.Claims["iss"] = v.pick([]string{"https://gitlab.com", "gitlab-ai-gateway"})
	}
	if in.Token.Status == TokenValid {
		b, _ := json.Marshal(in.Token)
		sum := sha256.Sum256(b)
		in.Token.Hash = hex.EncodeToString(sum[:])
	} else {
		in.Token.Claims = nil
	}
	return &in
}

// TestCacheKeyIsSound is the safety net of the decision cache: many inputs
// per route (variants of every generated case), and whenever two get the same
// cache key their uncached decisions, each filled with its own identity, are
// equal — what a cache hit would serve is what the policy would decide. It
// fails when the key drops something a decision reads (checked by hand: the
// prompt id, the params, the raw header on proxy and fallback routes, the
// canonical header on proxy routes).
func TestCacheKeyIsSound(t *testing.T) {
	const (
		perCase  = 40  // variants of each generated case
		perKey   = 3   // inputs evaluated per shared key
		maxEvals = 600 // decisions evaluated per policy
	)
	ctx := context.Background()
	for name, kp := range keyedPolicies(t) {
		t.Run(name, func(t *testing.T) {
			p, m := kp.p, kp.m
			if p.routes.rawPath != "" || p.routes.rawHeader != "" {
				t.Fatalf("the request is keyed raw: %q %q", p.routes.rawPath, p.routes.rawHeader)
			}
			v := &variants{rng: mrand.New(mrand.NewPCG(7, uint64(len(name)))), m: m, matcher: route.New(m), refuse: map[string][]string{}}
			for _, up := range catalog.Example().UnitPrimitiveNames() {
				v.ups = append(v.ups, up)
				v.ups = append(v.ups, catalog.Example().UnitPrimitives[up].AliasNames...)
			}
			for _, pr := range m.Prompts {
				v.prompts = append(v.prompts, pr.ID)
			}
			for _, r := range m.Routes {
				for _, h := range r.RefuseHeaders {
					v.refuse[h.HeaderKey()] = append(v.refuse[h.HeaderKey()], h.Values...)
				}
			}
			var bases []*Input
			for _, c := range p.Generated().Cases {
				in := caseInput(t, c)
				bases = append(bases, in)
				if in.Body.Status != "" {
					v.bodies = append(v.bodies, in.Body)
				}
			}
			v.bodies = append(v.bodies, BodyInput{}, BodyInput{Status: BodyOK, JSON: map[string]any{}})
			// Keys are cheap, decisions are not: key every variant, then
			// evaluate only members of keys that several variants share
			// (a key of one input proves nothing), up to perKey of each.
			type variant struct {
				in  *Input
				id  identity.Identity
				key string
			}
			byKey := map[string][]variant{}
			var order []string
			n := 0
			for _, base := range bases {
				for range perCase {
					in := v.mutate(base)
					id := p.identify(in)
					key, ok := p.cacheKey(in, &id)
					n++
					if !ok {
						continue
					}
					if _, seen := byKey[key]; !seen {
						order = append(order, key)
					}
					if len(byKey[key]) < perKey {
						byKey[key] = append(byKey[key], variant{in, id, key})
					}
				}
			}
			// In random order, so the evaluation budget covers every route.
			v.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			evaluated, shared := 0, 0
			for _, key := range order {
				group := byKey[key]
				if len(group) < 2 || evaluated >= maxEvals {
					continue
				}
				shared++
				first, err := p.Decide(ctx, group[0].in)
				if err != nil {
					t.Fatalf("%s %q: a fault on a cacheable request: %v", group[0].in.Method, group[0].in.Path, err)
				}
				evaluated++
				for _, other := range group[1:] {
					d, err := p.Decide(ctx, other.in)
					if err != nil {
						t.Fatalf("%s %q: a fault on a cacheable request: %v", other.in.Method, other.in.Path, err)
					}
					evaluated++
					hit := first.clone()
					fillIdentity(&hit, &other.id)
					if !reflect.DeepEqual(hit, d) {
						a, b := group[0].in, other.in
						t.Fatalf("one cache key, two decisions:\n%s %q token %s up %q\n  %+v\n%s %q token %s up %q\n  %+v",
							a.Method, a.Path, a.Token.Status, a.Headers[upHeader], first,
							b.Method, b.Path, b.Token.Status, b.Headers[upHeader], d)
					}
				}
			}
			t.Logf("%d inputs, %d keys, %d shared by several inputs, %d decisions compared", n, len(byKey), shared, evaluated)
			if shared < 100 {
				t.Errorf("only %d keys are shared by several inputs: the test proves little", shared)
			}
		})
	}
}

// TestRouteKeyFallsBackToRaw: a module that reads the path, the method or
// the unit-primitive header outside the routing (or the core's rules derived
// from them) makes the key raw again, and Stats says why.
func TestRouteKeyFallsBackToRaw(t *testing.T) {
	if s := buildExample(t, "ai_gateway", BuildOptions{}).Stats(); !s.RouteKeyed || s.RouteKeyWhyNot != "" {
		t.Fatalf("the example is not route keyed: %+v", s)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"path", "deny contains \"p\" if startswith(input.request.path, \"/v1/x\")", "input.request.path"},
		{"method", "deny contains \"m\" if input.request.method == \"PUT\"", "input.request.method"},
		{"header", "deny contains \"h\" if input.request.headers[\"x-gitlab-unit-primitive\"] == \"x\"", "x-gitlab-unit-primitive"},
		{"core", "deny contains \"c\" if data.ccauthz.main.wildcard_rest == \"x\"", "data.ccauthz.main"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeExtra(t, map[string]string{"x.rego": "package ccauthz.extra\n\n" + tt.src + "\n"})
			p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
			s := p.Stats()
			if !s.CacheEnabled || s.RouteKeyed || !strings.Contains(s.RouteKeyWhyNot, tt.want) {
				t.Fatalf("want a raw key because of %s: %+v", tt.want, s)
			}
			// Raw again: two paths of one route, or two header values on a
			// route that never reads it, get different keys.
			a, b := aiGatewayInput(), aiGatewayInput()
			if tt.name == "header" {
				b.Headers[upHeader] = "x"
			} else if tt.name == "method" {
				b.Method = "PUT"
			} else {
				a.Path, b.Path = "/v1/prompts/a/b", "/v1/prompts/a/c"
			}
			ida, idb := p.identify(a), p.identify(b)
			ka, _ := p.cacheKey(a, &ida)
			kb, _ := p.cacheKey(b, &idb)
			if ka == kb {
				t.Errorf("one key for %s %q and %s %q", a.Method, a.Path, b.Method, b.Path)
			}
		})
	}
}

// TestGarbageTokensShareKeys: the adversarial mix (tokens that do not
// verify, random paths, random unit-primitive headers) needs only a few keys:
// one per route and token status, not one per request.
func TestGarbageTokensShareKeys(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	rng := mrand.New(mrand.NewPCG(3, 4))
	v := &variants{rng: rng}
	paths := []string{"/v2/code/completions", "/v1/chat/agent", "/v1/proxy/anthropic/v1/messages", "/v1/prompts/chat/explain_code"}
	keys := map[string]bool{}
	for range 2000 {
		in := aiGatewayInput()
		in.Token = TokenInput{Status: TokenInvalid, Reason: "unknown_kid", Hash: v.word()}
		in.Path = "/" + v.word() + "/" + v.word()
		if rng.IntN(2) == 0 {
			in.Path = paths[rng.IntN(len(paths))]
		}
		in.Headers[upHeader] = v.word()
		id := p.identify(in)
		k, ok := p.cacheKey(in, &id)
		if !ok {
			t.Fatalf("uncacheable: %s", in.Path)
		}
		keys[k] = true
	}
	if len(keys) > 10 {
		t.Errorf("2000 garbage requests need %d keys, want at most 10", len(keys))
	}
}

// TestRouteDisagreementIsNotCached: if the Go matcher that keys a request
// ever names another route than the Rego that decides it, the decision is
// not cached (requests sharing the key could be other routes') and the
// disagreement is counted. The plan is tampered with to make them differ.
func TestRouteDisagreementIsNotCached(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	for i := range p.routes.plans {
		p.routes.plans[i].id += "-tampered"
	}
	in := aiGatewayInput()
	for range 2 {
		d, err := p.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allow || d.Route != "code_completions_v2" {
			t.Fatalf("decision %+v, want the Rego's allow on code_completions_v2", d)
		}
	}
	s := p.Stats()
	if s.CacheEntries != 0 || s.Hits != 0 || s.RouteDisagreements != 2 {
		t.Errorf("entries %d, hits %d, disagreements %d; want 0, 0, 2", s.CacheEntries, s.Hits, s.RouteDisagreements)
	}

	// Untampered, the same request is cached and hit.
	q := buildExample(t, "ai_gateway", BuildOptions{})
	for range 2 {
		if _, err := q.Decide(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	if s := q.Stats(); s.CacheEntries != 1 || s.Hits != 1 || s.RouteDisagreements != 0 {
		t.Errorf("untampered: entries %d, hits %d, disagreements %d; want 1, 1, 0", s.CacheEntries, s.Hits, s.RouteDisagreements)
	}
}
