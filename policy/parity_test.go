package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// parityInput is a valid instance-token request to the AI gateway example
// with the given scopes, path and JSON body ("" for none).
func parityInput(t *testing.T, path string, scopes []string, body string) *Input {
	t.Helper()
	in := aiGatewayInput()
	in.Path = path
	s := make([]any, len(scopes))
	for i, x := range scopes {
		s[i] = x
	}
	in.Token.Claims["scopes"] = s
	if body != "" {
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		in.Body = BodyInput{Status: BodyOK, JSON: v, Size: len(body)}
	}
	return in
}

// TestGatewayRequestRules replays the findings through Decide: each
// now matches the AI gateway (ai-gateway-request-rules.md).
func TestGatewayRequestRules(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	const completion = `{"prompt_components": [{"type": "code_editor_completion", "payload": {}}], "payload": {}}`
	const generation = `{"prompt_components": [{"type": "code_editor_generation"}], "payload": {}}`
	tests := []struct {
		name          string
		path          string
		scopes        []string
		body          string
		mutate        func(*Input)
		status        int
		reason        Reason
		detail        string
		www           string
		unitPrimitive []string
	}{
		{name: "user access token with the proxy unit primitive (any-of)", path: "/v1/code/user_access_token",
			scopes: []string{"ai_gateway_model_provider_proxy"}, status: 200, reason: ReasonAllowed,
			unitPrimitive: []string{"ai_gateway_model_provider_proxy"}},
		{name: "user access token with neither", path: "/v1/code/user_access_token", scopes: []string{"duo_chat"},
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to create user access token",
			www: `Bearer error="insufficient_scope", scope="complete_code ai_gateway_model_provider_proxy"`},
		{name: "v4 generation with generate_code", path: "/v4/code/suggestions", scopes: []string{"generate_code"},
			body: generation, status: 200, reason: ReasonAllowed, unitPrimitive: []string{"generate_code"}},
		{name: "v4 generation with complete_code only", path: "/v4/code/suggestions", scopes: []string{"complete_code"},
			body: generation, status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access code suggestions",
			www: `Bearer error="insufficient_scope", scope="generate_code"`},
		{name: "v4 completion with complete_code", path: "/v4/code/suggestions", scopes: []string{"complete_code"},
			body: completion, status: 200, reason: ReasonAllowed},
		{name: "v3 generation with a registry prompt needs its unit primitives", path: "/v3/code/completions",
			scopes: []string{"generate_code"},
			body:   `{"prompt_components": [{"type": "code_editor_generation"}], "payload": {"prompt_id": "review_merge_request"}}`,
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access code suggestions",
			www: `Bearer error="insufficient_scope", scope="review_merge_request include_merge_request_context"`},
		{name: "amazon q completion needs amazon_q_integration instead", path: "/v4/code/suggestions",
			scopes: []string{"complete_code"},
			body:   `{"prompt_components": [{"type": "code_editor_completion"}], "payload": {"model_provider": "amazon_q"}}`,
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access code suggestions"},
		{name: "v4 without a body fails closed", path: "/v4/code/suggestions", scopes: []string{"complete_code", "generate_code"},
			status: 400, reason: ReasonBodyMissing, detail: "Request body required", www: `Bearer error="invalid_request"`},
		{name: "v4 with too large a body", path: "/v4/code/suggestions", scopes: []string{"complete_code"},
			mutate: func(in *Input) { in.Body = BodyInput{Status: BodyTooLarge, Size: 1 << 30} },
			status: 413, reason: ReasonBodyTooLarge, detail: "Request body too large"},
		{name: "v4 with a code_context first component", path: "/v4/code/suggestions", scopes: []string{"complete_code"},
			body:   `{"prompt_components": [{"type": "code_context"}]}`,
			status: 400, reason: ReasonBodyInvalid,
			detail: "Request body: prompt_components[0].type must be one of code_editor_completion, code_editor_generation"},
		{name: "chat agent with an issue context and no include_issue_context", path: "/v2/chat/agent",
			scopes: []string{"duo_chat", "include_file_context"},
			body:   `{"messages": [{"additional_context": [{"category": "file"}, {"category": "issue"}]}]}`,
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access include_issue_context"},
		{name: "chat agent without duo_chat", path: "/v2/chat/agent", scopes: []string{"include_issue_context"},
			body:   `{"messages": [{"additional_context": [{"category": "issue"}]}]}`,
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access duo chat"},
		{name: "chat agent for Duo Core after the cut-off", path: "/v2/chat/agent", scopes: []string{"duo_chat"},
			body:   `{"messages": []}`,
			mutate: func(in *Input) { in.Headers["x-gitlab-feature-enablement-type"] = "duo_core" },
			status: 403, reason: ReasonHeaderRefused, detail: "Duo Core no longer authorized to access Duo Classic Chat"},
		{name: "chat agent with its contexts", path: "/v2/chat/agent", scopes: []string{"duo_chat", "include_issue_context"},
			body:   `{"messages": [{"additional_context": [{"category": "issue"}]}, {"content": "hi"}]}`,
			status: 200, reason: ReasonAllowed, unitPrimitive: []string{"duo_chat", "include_issue_context"}},
		{name: "prompt without a token", path: "/v1/prompts/chat/explain_code",
			mutate: func(in *Input) { in.Token = TokenInput{Status: TokenMissing, Reason: "missing_authorization"} },
			status: 401, reason: ReasonMissingAuthorization},
		{name: "prompt without its unit primitive", path: "/v2/prompts/chat/explain_code", scopes: []string{"duo_chat"},
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access 'chat/explain_code'"},
		{name: "prompt with its unit primitive", path: "/v1/prompts/chat/explain_code", scopes: []string{"explain_code"},
			status: 200, reason: ReasonAllowed, unitPrimitive: []string{"explain_code"}},
		{name: "unknown chat invokable", path: "/v1/chat/unknown_thing", scopes: []string{"duo_chat"},
			status: 404, reason: ReasonNoRoute, detail: "Not found"},
		{name: "proxy: scope before the feature map", path: "/v1/proxy/anthropic/v1/messages", scopes: []string{"duo_chat"},
			mutate: func(in *Input) { in.Headers["x-gitlab-unit-primitive"] = "generate_code" },
			status: 403, reason: ReasonInsufficientScope, detail: "Unauthorized to access generate_code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := parityInput(t, tt.path, tt.scopes, tt.body)
			if tt.mutate != nil {
				tt.mutate(in)
			}
			d, err := p.Decide(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != tt.status || d.Reason != tt.reason || d.Allow != (tt.status == 200) {
				t.Fatalf("got %d %s %v, want %d %s", d.Status, d.Reason, d.Body, tt.status, tt.reason)
			}
			if tt.detail != "" && d.Body["detail"] != tt.detail {
				t.Errorf("detail %q, want %q", d.Body["detail"], tt.detail)
			}
			if tt.www != "" && d.ResponseHeaders["www-authenticate"] != tt.www {
				t.Errorf("www-authenticate %q, want %q", d.ResponseHeaders["www-authenticate"], tt.www)
			}
			if tt.unitPrimitive != nil && strings.Join(d.UnitPrimitives, ",") != strings.Join(tt.unitPrimitive, ",") {
				t.Errorf("unit primitives %v, want %v", d.UnitPrimitives, tt.unitPrimitive)
			}
		})
	}
}

// TestBodyCacheKeysOnSelectorsOnly: a body-rule route's decisions are keyed
// on the values at the manifest's selectors, never on the rest of the body.
func TestBodyCacheKeysOnSelectorsOnly(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	if s := p.Stats(); !s.CacheEnabled {
		t.Fatalf("cache disabled: %s", s.CacheDisabledReason)
	}
	ctx := context.Background()
	scopes := []string{"complete_code"}
	first := parityInput(t, "/v4/code/suggestions", scopes, `{"prompt_components": [{"type": "code_editor_completion", "payload": {"content_above_cursor": "secret one"}}]}`)
	d1, _ := p.Decide(ctx, first)
	// Other code, same selector values: the same key, a hit.
	second := parityInput(t, "/v4/code/suggestions", scopes, `{"prompt_components": [{"type": "code_editor_completion", "payload": {"content_above_cursor": "other code"}}]}`)
	id1, id2 := p.identify(first), p.identify(second)
	k1, _ := p.cacheKey(first, &id1)
	k2, _ := p.cacheKey(second, &id2)
	if k1 != k2 {
		t.Errorf("keys differ on a field no rule reads:\n%q\n%q", k1, k2)
	}
	if strings.Contains(k1, "secret one") {
		t.Errorf("the cache key holds body content: %q", k1)
	}
	d2, _ := p.Decide(ctx, second)
	if p.Stats().Hits != 1 || d1.Status != 200 || d2.Status != 200 {
		t.Errorf("expected a hit: %+v %d %d", p.Stats(), d1.Status, d2.Status)
	}
	// A different value at a selector: its own decision.
	gen := parityInput(t, "/v4/code/suggestions", scopes, `{"prompt_components": [{"type": "code_editor_generation"}]}`)
	if d, _ := p.Decide(ctx, gen); d.Status != 403 {
		t.Errorf("generation served from a completion's cache entry: %+v", d)
	}
	// A wrong type at a selector differs from a string there.
	wrong := parityInput(t, "/v4/code/suggestions", scopes, `{"prompt_components": [{"type": 7}]}`)
	if d, _ := p.Decide(ctx, wrong); d.Status != 400 || d.Reason != ReasonBodyInvalid {
		t.Errorf("wrong type: %+v", d)
	}
	// The status is part of the key.
	absent := parityInput(t, "/v4/code/suggestions", scopes, "")
	if d, _ := p.Decide(ctx, absent); d.Status != 400 || d.Reason != ReasonBodyMissing {
		t.Errorf("absent body: %+v", d)
	}
}

// TestExtraModuleReadingTheBodyDisablesTheCache: the key covers only the
// manifest's selectors, so a module that reads the body turns the cache off.
func TestExtraModuleReadingTheBodyDisablesTheCache(t *testing.T) {
	src := `package ccauthz.extra

deny contains "no secrets" if contains(input.request.body.prompt, "secret")
`
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src})})
	if s := p.Stats(); s.CacheEnabled || !strings.Contains(s.CacheDisabledReason, "x.rego") || !strings.Contains(s.CacheDisabledReason, "body") {
		t.Fatalf("%+v", s)
	}
}

// TestReadsBody: a policy reads the body when its manifest has body rules
// or an extra module reads it; otherwise checks need not decode one.
func TestReadsBody(t *testing.T) {
	if !buildExample(t, "ai_gateway", BuildOptions{}).ReadsBody() {
		t.Error("ai_gateway has body rules, ReadsBody is false")
	}
	if buildExample(t, "duo_workflow", BuildOptions{}).ReadsBody() {
		t.Error("duo_workflow has no body rules, ReadsBody is true")
	}
	src := `package ccauthz.extra

deny contains "no secrets" if input.request.body_status == "ok"
`
	if !buildExample(t, "duo_workflow", BuildOptions{ExtraDir: writeExtra(t, map[string]string{"x.rego": src})}).ReadsBody() {
		t.Error("an extra module reads the body, ReadsBody is false")
	}
}

func TestParseInputJSONBody(t *testing.T) {
	in, err := ParseInputJSON([]byte(`{"request": {"method": "POST", "path": "/x", "body": {"a": [1, "b"]}}, "token": {"status": "missing"}}`))
	if err != nil || in.Body.Status != BodyOK || in.Body.JSON.(map[string]any)["a"] == nil {
		t.Fatalf("%+v %v", in, err)
	}
	in, err = ParseInputJSON([]byte(`{"request": {"method": "POST", "path": "/x", "body_status": "too_large"}, "token": {"status": "missing"}}`))
	if err != nil || in.Body.Status != BodyTooLarge {
		t.Fatalf("%+v %v", in, err)
	}
	for src, want := range map[string]string{
		`{"request": {"method": "POST", "path": "/x", "body_status": "huge"}, "token": {"status": "missing"}}`: `request.body_status "huge" must be one of absent, ok, too_large, truncated, invalid`,
		`{"request": {"method": "POST", "path": "/x", "body_status": "ok"}, "token": {"status": "missing"}}`:   `request.body_status "ok" needs request.body`,
	} {
		if _, err := ParseInputJSON([]byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", src, err, want)
		}
	}
}

// TestHeaderRefusals: refusals apply in manifest order (two that hold do not
// conflict), and one whose flag is off is not generated at all.
func TestHeaderRefusals(t *testing.T) {
	src := `backend: ai_gateway
flags: {cutoff: true, later: false}
routes:
  - id: chat
    methods: [POST]
    path: /chat
    unit_primitives: [duo_chat]
    refuse_headers:
      - {header: X-A, values: [one, two], detail: first}
      - {header: X-B, values: [b], detail: second, flag: cutoff}
      - {header: X-C, values: [c], detail: third, flag: later}
`
	m, err := manifest.Parse("m.yaml", []byte(src), catalog.Example())
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(catalog.Example(), m, BuildOptions{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		headers map[string]string
		status  int
		detail  string
	}{
		{map[string]string{"x-a": "two", "x-b": "b"}, 403, "first"},
		{map[string]string{"x-a": "three", "x-b": "b"}, 403, "second"},
		{map[string]string{"x-c": "c"}, 200, ""},
		{map[string]string{}, 200, ""},
	} {
		in := parityInput(t, "/chat", []string{"duo_chat"}, "")
		for k, v := range tt.headers {
			in.Headers[k] = v
		}
		d, err := p.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != tt.status || (tt.detail != "" && (d.Body["detail"] != tt.detail || d.Reason != ReasonHeaderRefused)) {
			t.Errorf("%v: got %d %s %v, want %d %s", tt.headers, d.Status, d.Reason, d.Body, tt.status, tt.detail)
		}
	}
}
