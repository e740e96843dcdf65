package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

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
		"/v1/prompts/*":                  "Unauthorized to access '{prompt_id}'",
		"/v2/prompts/*":                  "Unauthorized to access '{prompt_id}'",
		"/v1/chat/{chat_invokable}":      "Not found",
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
			[]string{`m.yaml:3:5: route "a" needs unit_primitives, any_of, unit_primitive_header, prompt, body, authenticate_only, not_found or public: true`}},
		{"both unit primitive modes", head + "  - {id: a, methods: [GET], path: /a, unit_primitives: [duo_chat], unit_primitive_header: {allow: [duo_chat]}}\n",
			[]string{`m.yaml:3:56: route "a" sets both unit_primitive_header and unit_primitives; use one`}},
		{"public with unit primitives", head + "  - {id: a, methods: [GET], path: /a, public: true, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:3:70: a public route cannot set "unit_primitives"`}},
		{"detail placeholder unknown", head + "  - {id: a, methods: [GET], path: '/a/{x}', unit_primitives: [duo_chat], detail: 'no {y}'}\n",
			[]string{`m.yaml:3:82: detail uses {y}, which is neither {unit_primitive}, {prompt_id} (prompt routes) nor a parameter of the route's path`}},
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
		{"any_of with one unit primitive", head + "  - {id: a, methods: [GET], path: /a, any_of: [duo_chat]}\n",
			[]string{`m.yaml:3:47: field "any_of" must list at least two unit primitives (use unit_primitives for one)`}},
		{"any_of unknown unit primitive", head + "  - {id: a, methods: [GET], path: /a, any_of: [duo_chat, nope]}\n",
			[]string{`m.yaml:3:58: unit primitive "nope" is not in the catalog`}},
		{"any_of repeats an all-of unit primitive", head + "  - {id: a, methods: [GET], path: /a, unit_primitives: [duo_chat], any_of: [duo_chat, complete_code]}\n",
			[]string{`m.yaml:3:77: duplicate unit primitive "duo_chat"`}},
		{"bad selector", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - {each: 'messages[x].category', unit_primitive: 'include_{value}_context'}\n",
			[]string{`m.yaml:7:16: selector "messages[x].category": index at "[x].category" must be [N] or [*]`}},
		{"selector with empty field", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - {each: 'messages..category', unit_primitive: 'include_{value}_context'}\n",
			[]string{`m.yaml:7:16: selector "messages..category": expected a field name at ".category"`}},
		{"bad template", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - {each: 'messages[*].category', unit_primitive: 'include_context'}\n",
			[]string{`m.yaml:7:56: unit_primitive template "include_context" must contain {value} once, with only a-z, 0-9 and _ around it`}},
		{"unknown unit primitive in a body map", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - each: kind\n        map: {chat: [duo_chat], code: [nope]}\n",
			[]string{`m.yaml:8:40: unit primitive "nope" is not in the catalog`}},
		{"unknown unit primitive in a case", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - cases:\n          - {when: {kind: chat}, unit_primitives: [nope]}\n",
			[]string{`m.yaml:8:52: unit primitive "nope" is not in the catalog`}},
		{"many-valued condition", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - cases:\n          - {when: {'items[*].kind': chat}, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:8:21: selector "items[*].kind" in "when" must name one value (no [*])`}},
		{"prompt_from without a registry", head + "  - id: a\n    methods: [POST]\n    path: /a\n    body:\n      - cases:\n          - {prompt_from: payload.prompt_id, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:3:5: route "a" reads prompts but the manifest names no prompt_registry`}},
		{"prompt route not ending in a wildcard", head + "  - {id: a, methods: [POST], path: '/p/{x}', prompt: true}\n",
			[]string{`m.yaml:3:5: route "a" reads prompts but the manifest names no prompt_registry`, `m.yaml:3:54: a prompt route's path must end in "*" (the prompt id)`}},
		{"prompt registry without a file", "prompt_registry: prompts\n" + head + "  - {id: a, methods: [POST], path: '/p/*', prompt: true}\n",
			[]string{`m.yaml:1:18: prompt_registry needs the manifest to be loaded from a file (its directory is relative to the manifest)`}},
		{"undeclared flag", head + "  - id: a\n    methods: [POST]\n    path: /a\n    unit_primitives: [duo_chat]\n    refuse_headers:\n      - {header: X-Kind, values: [x], detail: no, flag: cutoff}\n",
			[]string{`m.yaml:8:9: flag "cutoff" is not declared in the manifest's flags`}},
		{"not_found route with unit primitives", head + "  - {id: a, methods: [POST], path: '/a/{x}', not_found: true, unit_primitives: [duo_chat]}\n",
			[]string{`m.yaml:3:80: a not_found route cannot set "unit_primitives"`}},
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

// TestAIGatewayExampleRequestRules pins the request rules of the facts
// (ai-gateway-request-rules.md) in the example: any-of, no dry run, prompt
// routes, body rules and the Duo Core cut-off.
func TestAIGatewayExampleRequestRules(t *testing.T) {
	m, err := Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	m, err = m.Bind(catalog.Example())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Route{}
	for _, r := range m.Routes {
		if r.DryRun {
			t.Errorf("route %s is in dry run", r.ID)
		}
		byID[r.ID] = r
	}
	if got := byID["code_user_access_token"].AnyOf; strings.Join(got, ",") != "complete_code,ai_gateway_model_provider_proxy" {
		t.Errorf("user_access_token any_of %v", got)
	}
	for _, id := range []string{"prompts_v1", "prompts_v2"} {
		if !byID[id].Prompt {
			t.Errorf("%s is not a prompt route", id)
		}
	}
	for _, id := range []string{"code_completions_v3", "code_suggestions_v4"} {
		r := byID[id]
		if len(r.Body) != 1 || len(r.Body[0].Cases) != 3 || r.Body[0].Cases[2].PromptFrom == nil ||
			r.Body[0].Cases[2].PromptFrom.Path != "payload.prompt_id" || r.Body[0].Otherwise != OtherwiseReject {
			t.Errorf("%s body rules %+v", id, r.Body)
		}
	}
	chat := byID["chat_agent_v2"]
	if len(chat.Body) != 1 || chat.Body[0].Each.Path != "messages[*].additional_context[*].category" ||
		chat.Body[0].Template != "include_{value}_context" || len(chat.RefuseHeaders) != 1 || !m.Flags[chat.RefuseHeaders[0].Flag] {
		t.Errorf("chat_agent_v2 %+v", chat)
	}
	if p, ok := m.PromptByID("review_merge_request"); !ok || strings.Join(p.UnitPrimitives, ",") != "review_merge_request,include_merge_request_context" {
		t.Errorf("registry prompt %+v %v", p, ok)
	}
	if p, ok := m.PromptByID("resolve_vulnerability"); !ok || strings.Join(p.UnitPrimitives, ",") != "resolve_vulnerability" {
		t.Errorf("older unit_primitive key not read: %+v", p)
	}
	if len(m.BodySelectors()) != 4 {
		t.Errorf("body selectors %v", m.BodySelectors())
	}
}

func TestParseSelector(t *testing.T) {
	sel, err := ParseSelector("messages[*].additional_context[*].category")
	if err != nil || len(sel.Steps) != 5 || !sel.Steps[1].Each || sel.Steps[4].Field != "category" || !sel.Many() {
		t.Fatalf("%+v %v", sel, err)
	}
	sel, err = ParseSelector("prompt_components[0].type")
	if err != nil || len(sel.Steps) != 3 || sel.Steps[1].Index != 0 || sel.Steps[1].Each || sel.Many() {
		t.Fatalf("%+v %v", sel, err)
	}
	for _, bad := range []string{"", ".a", "a.", "a[", "a[-1]", "a[01]", "[0]", "a.b[*]c", "a b"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("selector %q accepted", bad)
		}
	}
}

// TestPromptRegistryProblems: every registry problem is positioned in the
// definition file (or at the manifest's prompt_registry field).
func TestPromptRegistryProblems(t *testing.T) {
	cat := catalog.Example()
	const manifestSrc = "backend: ai_gateway\nprompt_registry: prompts\nroutes:\n  - {id: p, methods: [POST], path: '/v1/prompts/*', prompt: true}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"unknown unit primitive", map[string]string{"prompts/chat/x/base/1.0.0.yml": "name: x\nunit_primitives:\n  - duo_chat\n  - nope\n"},
			[]string{`prompts/chat/x/base/1.0.0.yml:4:5: unit primitive "nope" is not in the catalog`}},
		{"unreadable YAML", map[string]string{"prompts/chat/x/base/1.0.0.yml": "unit_primitives: [\n"},
			[]string{`prompts/chat/x/base/1.0.0.yml:1:1: YAML syntax error: did not find expected node content`}},
		{"no unit primitives", map[string]string{"prompts/chat/x/base/1.0.0.yml": "name: x\n"},
			[]string{`prompts/chat/x/base/1.0.0.yml:1:1: a prompt definition needs unit_primitives (or the older unit_primitive)`}},
		{"both keys", map[string]string{"prompts/x/base/1.0.0.yml": "unit_primitives: [duo_chat]\nunit_primitive: duo_chat\n"},
			[]string{`prompts/x/base/1.0.0.yml:2:17: a prompt definition sets unit_primitives or the older unit_primitive, not both`}},
		{"not the layout", map[string]string{"prompts/x/1.0.0.yml": "unit_primitive: duo_chat\n", "prompts/y/base/latest.yml": "unit_primitive: duo_chat\n"},
			[]string{
				`prompts/x/1.0.0.yml: prompt definition is not in the <prompt_id>/<model family>/<version>.yml layout (version like 1.0.0 or 1.1.0-dev)`,
				`prompts/y/base/latest.yml: prompt definition is not in the <prompt_id>/<model family>/<version>.yml layout (version like 1.0.0 or 1.1.0-dev)`,
			}},
		{"id no route can match", map[string]string{"prompts/chat/a b/base/1.0.0.yml": "unit_primitive: duo_chat\n"},
			[]string{`prompts/chat/a b/base/1.0.0.yml: prompt id "chat/a b" cannot be matched by any route: segment "a b" has characters a path pattern does not allow`}},
		{"empty registry", map[string]string{"prompts/README.md": "nothing\n"},
			[]string{`m.yaml:2:18: prompt registry prompts holds no prompt definitions (<prompt_id>/<model family>/<version>.yml)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m.yaml": {Data: []byte(manifestSrc)}}
			for name, src := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(src)}
			}
			m, err := LoadFS(fsys, "m.yaml")
			if err == nil {
				_, err = m.Bind(cat)
			}
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if ve.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", ve.Error(), strings.Join(tt.want, "\n"))
			}
		})
	}
	// A registry directory that does not exist, read from disk.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(manifestSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(filepath.Join(dir, "m.yaml"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:2:18: prompt_registry "+filepath.Join(dir, "prompts")+": ") {
		t.Errorf("missing registry: %v", err)
	}
	// And one that exists: the union over versions, sorted ids.
	if err := os.MkdirAll(filepath.Join(dir, "prompts", "a", "b", "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "prompts", "a", "b", "base", "1.0.0.yml"), []byte("unit_primitives: [duo_chat]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "prompts", "a", "b", "base", "2.0.0.yml"), []byte("unit_primitives: [explain_code, duo_chat]\n"), 0o644)
	m, err := Load(filepath.Join(dir, "m.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Prompts) != 1 || m.Prompts[0].ID != "a/b" || strings.Join(m.Prompts[0].UnitPrimitives, ",") != "duo_chat,explain_code" {
		t.Errorf("prompts %+v", m.Prompts)
	}
}

// TestExampleFSLoadsFromDisk: a copy of ExampleFS on disk loads with Load,
// registry included, to the same manifest as the embedded example.
func TestExampleFSLoadsFromDisk(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, ExampleFS()); err != nil {
		t.Fatal(err)
	}
	onDisk, err := Load(filepath.Join(dir, "ai_gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Digest() != embedded.Digest() || len(onDisk.Prompts) != 6 {
		t.Errorf("disk copy differs: %d prompts", len(onDisk.Prompts))
	}
}
