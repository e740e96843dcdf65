package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
)

// testCatalog is a small sealed catalog, independent of the example one.
func testCatalog() *catalog.Catalog {
	c := catalog.New(catalog.ShapeLayout, "test")
	c.BackendServices["ai_gateway"] = &catalog.BackendService{Name: "ai_gateway", JWTAud: "gitlab-ai-gateway"}
	c.BackendServices["other"] = &catalog.BackendService{Name: "other", JWTAud: "gitlab-other"}
	c.UnitPrimitives["complete_code"] = &catalog.UnitPrimitive{Name: "complete_code", BackendServices: []string{"ai_gateway"}, AliasNames: []string{"code_suggestions"}}
	c.UnitPrimitives["duo_chat"] = &catalog.UnitPrimitive{Name: "duo_chat", BackendServices: []string{"ai_gateway"}}
	c.UnitPrimitives["observability_all"] = &catalog.UnitPrimitive{Name: "observability_all", BackendServices: []string{"other"}}
	c.Seal()
	return c
}

func TestExamplesValidateAgainstExampleCatalog(t *testing.T) {
	cat := catalog.Example()
	names := ExampleNames()
	if len(names) < 2 {
		t.Fatalf("examples: %v", names)
	}
	for _, n := range names {
		m, err := Example(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := m.Bind(cat); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if _, err := Example("nope"); !errors.Is(err, ErrUnknownExample) {
		t.Errorf("unknown example: %v", err)
	}
}

// TestAIGatewayExampleCoversFacts checks every AI gateway route of the facts
// (§4.1, §3.2 skip list) is in the example with its exact 403 detail.
func TestAIGatewayExampleCoversFacts(t *testing.T) {
	m, err := Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Route{}
	for _, r := range m.Routes {
		byPath[r.Path] = r
	}
	want := map[string]string{
		"/monitoring/healthz":            "",
		"/monitoring/ready":              "",
		"/metrics":                       "",
		"/v1/code/user_access_token":     "Unauthorized to create user access token",
		"/v2/completions":                "Unauthorized to access code completions",
		"/v2/code/completions":           "Unauthorized to access code completions",
		"/v2/code/generations":           "Unauthorized to access code generations",
		"/v3/code/completions":           "Unauthorized to access code suggestions",
		"/v4/code/suggestions":           "Unauthorized to access code suggestions",
		"/v1/chat/explain_code":          "Unauthorized to access duo_chat",
		"/v1/chat/write_tests":           "Unauthorized to access duo_chat",
		"/v1/chat/refactor_code":         "Unauthorized to access duo_chat",
		"/v1/chat/agent":                 "Unauthorized to access duo_chat",
		"/v1/chat/explain_vulnerability": "Unauthorized to access explain_vulnerability",
		"/v1/chat/summarize_comments":    "Unauthorized to access summarize_comments",
		"/v1/chat/troubleshoot_job":      "Unauthorized to access troubleshoot_job",
		"/v2/chat/agent":                 "Unauthorized to access duo chat",
		"/v1/search/gitlab-docs":         "Unauthorized to search documentations",
		"/v1/x-ray/libraries":            "Unauthorized to access X Ray",
		"/v1/prompts/*":                  DefaultDetail,
		"/v2/prompts/*":                  DefaultDetail,
		"/v1/proxy/anthropic/*":          DefaultDetail,
		"/v1/proxy/vertex-ai/*":          DefaultDetail,
		"/v1/proxy/openai/*":             DefaultDetail,
		"/v1/amazon_q/oauth/application": "Unauthorized to perform action",
		"/v1/amazon_q/events":            "Unauthorized to perform action",
	}
	for path, detail := range want {
		r, ok := byPath[path]
		if !ok {
			t.Errorf("route %s missing", path)
			continue
		}
		if detail == "" && !r.Public {
			t.Errorf("%s should be public", path)
		}
		if detail != "" && r.Detail != detail {
			t.Errorf("%s detail %q, want %q", path, r.Detail, detail)
		}
	}
	// User tokens (iss gitlab-ai-gateway) are refused where the gateway
	// refuses them.
	for _, p := range []string{"/v1/code/user_access_token", "/v2/code/generations", "/v3/code/completions", "/v4/code/suggestions", "/v1/x-ray/libraries"} {
		if r := byPath[p]; len(r.DisallowedIssuers) != 1 || r.DisallowedIssuers[0] != "gitlab-ai-gateway" {
			t.Errorf("%s disallowed issuers %v", p, r.DisallowedIssuers)
		}
	}
	if a := byPath["/v1/proxy/anthropic/*"].HeaderUP; a == nil || len(a.Allow) != 28 {
		t.Errorf("anthropic proxy allow-list: %+v", a)
	}
}

func TestBindResolvesAliasesAndBackend(t *testing.T) {
	m, err := Parse("m.yaml", []byte(`backend: gitlab-ai-gateway
routes:
  - {id: a, methods: [POST], path: /a, unit_primitives: [code_suggestions]}
`), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if m.Backend != "ai_gateway" || m.Audience != "gitlab-ai-gateway" || m.Routes[0].UnitPrimitives[0] != "complete_code" || !m.Bound() {
		t.Errorf("bound manifest: %+v", m)
	}
	if len(m.Bindings) != 4 || m.SeatBuckets.SmallMax != DefaultSmallMax || m.RateLimit.DefaultClass != DefaultRateClass {
		t.Errorf("defaults not applied: %+v", m)
	}
}

func TestProblems(t *testing.T) {
	const head = "backend: ai_gateway\nroutes:\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", []string{"m.yaml:1:1: file is empty"}},
		{"unknown top-level field", "backend: ai_gateway\nroute: []\nroutes: []\n",
			[]string{`m.yaml:2:1: unknown field "route" in manifest (did you mean "routes"?)`, `m.yaml:3:9: field "routes" must list at least one route`}},
		{"missing routes", "backend: ai_gateway\n", []string{`m.yaml:1:1: missing required field "routes" in manifest`}},
		{"unknown backend", "backend: nope\nroutes:\n  - {id: a, methods: [GET], path: /a, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:1:10: backend "nope" is not in the catalog (known: [ai_gateway other])`}},
		{"unknown unit primitive", head + "  - {id: a, methods: [GET], path: /a, unit_primitives: [duo_chat, nope]}\n",
			[]string{`m.yaml:3:67: unit primitive "nope" is not in the catalog`}},
		{"unit primitive of another backend", head + "  - {id: a, methods: [GET], path: /a, unit_primitives: [observability_all]}\n",
			[]string{`m.yaml:3:57: unit primitive "observability_all" is not served by backend "ai_gateway" (its backends: [other])`}},
		{"bad route id", head + "  - {id: A-1, methods: [GET], path: /a, public: true}\n",
			[]string{`m.yaml:3:10: route id "A-1" must be snake_case (it names a Rego package)`}},
		{"duplicate route id", head + "  - {id: a, methods: [GET], path: /a, public: true}\n  - {id: a, methods: [GET], path: /b, public: true}\n",
			[]string{`m.yaml:4:5: duplicate route id "a"`}},
		{"bad method", head + "  - {id: a, methods: [get], path: /a, public: true}\n",
			[]string{`m.yaml:3:23: method "get" must be one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT (upper case)`}},
		{"relative path", head + "  - {id: a, methods: [GET], path: a, public: true}\n",
			[]string{`m.yaml:3:35: path "a" must start with "/"`}},
		{"wildcard not last", head + "  - {id: a, methods: [GET], path: /a/*/b, public: true}\n",
			[]string{`m.yaml:3:35: path "/a/*/b": "*" is only allowed as the last segment`}},
		{"empty segment", head + "  - {id: a, methods: [GET], path: /a//b, public: true}\n",
			[]string{`m.yaml:3:35: path "/a//b" has an empty segment`}},
		{"query in path", head + "  - {id: a, methods: [GET], path: '/a?x=1', public: true}\n",
			[]string{`m.yaml:3:35: path "/a?x=1" must not contain a query or fragment`}},
		{"neither unit primitives nor public", head + "  - {id: a, methods: [GET], path: /a}\n",
			[]string{`m.yaml:3:5: route "a" needs unit_primitives, unit_primitive_header or public: true`}},
		{"both unit primitive modes", head + "  - {id: a, methods: [GET], path: /a, unit_primitives: [duo_chat], unit_primitive_header: {allow: [duo_chat]}}\n",
			[]string{`m.yaml:3:5: route "a" sets both unit_primitives and unit_primitive_header; use one`}},
		{"public with unit primitives", head + "  - {id: a, methods: [GET], path: /a, public: true, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:3:70: a public route cannot set "unit_primitives"`}},
		{"detail placeholder unknown", head + "  - {id: a, methods: [GET], path: '/a/{x}', unit_primitives: [duo_chat], detail: 'no {y}'}\n",
			[]string{`m.yaml:3:82: detail uses {y}, which is neither {unit_primitive} nor a parameter of the route's path`}},
		{"ambiguous overlap", head + "  - {id: a, methods: [GET], path: '/a/{x}', public: true}\n  - {id: b, methods: [GET, POST], path: '/a/{y}', public: true}\n",
			[]string{`m.yaml:4:5: route "b" overlaps route "a" (line 3) ambiguously: both match GET /a/x`}},
		{"crossing overlap", head + "  - {id: a, methods: [GET], path: '/a/{x}/c', public: true}\n  - {id: b, methods: [GET], path: '/a/b/{y}', public: true}\n",
			[]string{`m.yaml:4:5: route "b" overlaps route "a" (line 3) ambiguously: both match GET /a/b/c`}},
		{"bad header name", head + "  - {id: a, methods: [GET], path: /a, public: true}\nbindings:\n  - {claim: sub, header: 'X Bad'}\n",
			[]string{`m.yaml:5:26: header name "X Bad" is not a valid HTTP header name`}},
		{"authorization binding", head + "  - {id: a, methods: [GET], path: /a, public: true}\nbindings:\n  - {claim: sub, header: Authorization}\n",
			[]string{`m.yaml:5:26: header "Authorization" cannot be bound: the policy never sees the Authorization header`}},
		{"claim bound to two headers", head + "  - {id: a, methods: [GET], path: /a, public: true}\nbindings:\n  - {claim: sub, header: X-A}\n  - {claim: sub, header: X-B}\n",
			[]string{`m.yaml:6:5: claim "sub" is already bound to header "X-A" for the same token kind; a claim can equal only one header`}},
		{"bad token kind", head + "  - {id: a, methods: [GET], path: /a, public: true}\nbindings:\n  - {claim: sub, header: X-A, token_kind: robot}\n",
			[]string{`m.yaml:5:43: token_kind "robot" must be one of instance, user`}},
		{"seat buckets out of order", head + "  - {id: a, methods: [GET], path: /a, public: true}\nseat_buckets: {small_max: 500, medium_max: 100}\n",
			[]string{`m.yaml:4:15: medium_max (100) must be greater than small_max (500)`}},
		{"bad limit unit", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  classes:\n    - {name: c, unit_primitives: [duo_chat], limit: {requests_per_unit: 0, unit: week}}\n",
			[]string{
				`m.yaml:6:73: requests_per_unit must be at least 1, got 0`,
				`m.yaml:6:82: unit "week" must be one of second, minute, hour, day`,
			}},
		{"unit primitive in two classes", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  classes:\n    - {name: c1, unit_primitives: [duo_chat]}\n    - {name: c2, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:7:7: unit primitive "duo_chat" is in rate classes "c1" and "c2"`}},
		{"bad per-instance limit", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  classes:\n    - name: c\n      unit_primitives: [duo_chat]\n      per_instance: {requests_per_unit: -1, unit: minute, seat_buckets: {tiny: {requests_per_unit: 1, unit: minute}, small: {unit: hour}}}\n",
			[]string{
				`m.yaml:8:41: requests_per_unit must be at least 1, got -1`,
				`m.yaml:8:74: unknown field "tiny" in seat_buckets`,
				`m.yaml:8:125: missing required field "requests_per_unit" in seat bucket small`,
			}},
		{"per-user limit without unit", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  classes:\n    - {name: c, unit_primitives: [duo_chat], per_user: {requests_per_unit: 5, per: minute}}\n",
			[]string{
				`m.yaml:6:56: missing required field "unit" in per_user`,
				`m.yaml:6:79: unknown field "per" in per_user`,
			}},
		{"bad auth failure limit", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  auth_failures: {requests_per_unit: 10, unit: fortnight}\n",
			[]string{`m.yaml:5:48: unit "fortnight" must be one of second, minute, hour, day`}},
		{"class without unit primitives", head + "  - {id: a, methods: [GET], path: /a, public: true}\nrate_limit:\n  default_class: std\n  classes:\n    - {name: std, unit_primitives: [], per_user: {requests_per_unit: 5, unit: minute}}\n    - {name: other, unit_primitives: []}\n",
			[]string{`m.yaml:8:7: rate class "other" lists no unit primitives and is not the default_class "std"`}},
		{"syntax error", "backend: [\n", []string{"m.yaml:1:1: YAML syntax error: did not find expected node content"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tt.src), testCatalog())
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			got := strings.Split(ve.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", ve.Error(), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestOverlapPrecedenceAllowed(t *testing.T) {
	// A literal route beside a param route and a wildcard: each strictly more
	// specific where they overlap, so no problem.
	src := `backend: ai_gateway
routes:
  - {id: lit, methods: [GET], path: /a/b, public: true}
  - {id: param, methods: [GET], path: '/a/{x}', public: true}
  - {id: wild, methods: [GET], path: /a/*, public: true}
  - {id: other_method, methods: [POST], path: '/a/{y}', public: true}
`
	m, err := Parse("m.yaml", []byte(src), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	ranks := map[string]string{}
	for _, r := range m.Routes {
		ranks[r.ID] = r.Rank()
	}
	if !(ranks["lit"] > ranks["param"] && ranks["param"] > ranks["wild"]) {
		t.Errorf("ranks %v", ranks)
	}
}
