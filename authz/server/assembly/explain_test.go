package assembly

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccauthz/ccauthz/authz/api"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

// explainCases covers an allow and each kind of denial; want is the reason
// both Check and Explain must give.
func explainCases(auth string) []struct {
	name, want string
	req        *ccauthzv1.ExplainRequest
} {
	base := map[string]string{
		"authorization": auth, "x-gitlab-authentication-type": "oidc",
		"x-gitlab-instance-id": instance, "x-gitlab-realm": "self-managed",
		"content-type": "application/json", "user-agent": "gitlab-rails",
	}
	with := func(edit func(h map[string]string)) map[string]string {
		h := maps.Clone(base)
		edit(h)
		return h
	}
	req := func(path string, h map[string]string) *ccauthzv1.ExplainRequest {
		return &ccauthzv1.ExplainRequest{Method: "POST", Path: path, Host: "cloud.gitlab.com", Headers: h}
	}
	return []struct {
		name, want string
		req        *ccauthzv1.ExplainRequest
	}{
		{"allow", "allowed", req("/v2/code/completions", base)},
		{"missing token", "missing_authorization", req("/v2/code/completions", with(func(h map[string]string) { delete(h, "authorization") }))},
		{"invalid token", "invalid_token", req("/v2/code/completions", with(func(h map[string]string) { h["authorization"] = "Bearer a.b.c" }))},
		{"wrong auth type", "invalid_authentication_type", req("/v2/code/completions", with(func(h map[string]string) { h["x-gitlab-authentication-type"] = "bogus" }))},
		{"header mismatch", "header_mismatch", req("/v2/code/completions", with(func(h map[string]string) { h["x-gitlab-instance-id"] = "someone-else" }))},
		{"no route", "no_route", req("/v9/nothing", base)},
		{"insufficient scope", "insufficient_scope", req("/v2/code/generations", base)},
		{"proxy header missing", "missing_unit_primitive_header", req("/v1/proxy/anthropic/v1/messages", base)},
		{"proxy header unknown", "unknown_unit_primitive", req("/v1/proxy/anthropic/v1/messages", with(func(h map[string]string) { h["x-gitlab-unit-primitive"] = "no_such_thing" }))},
		{"proxy header not allowed", "unit_primitive_not_allowed", req("/v1/proxy/anthropic/v1/messages", with(func(h map[string]string) { h["x-gitlab-unit-primitive"] = "complete_code" }))},
		{"body missing", "body_missing", req("/v3/code/completions", base)},
		{"unknown backend", "unknown_backend", &ccauthzv1.ExplainRequest{Backend: "nope", Method: "GET", Path: "/", Headers: base}},
	}
}

// TestExplainMatchesCheck: Explain decides exactly what Check decides, on
// an allow and every kind of denial, and leaves no trace in the metrics.
func TestExplainMatchesCheck(t *testing.T) {
	a, auth := assemble(t)
	ctx := context.Background()
	svc := api.NewDecisionService(func() api.Explainer { return a.Server.Explain })
	checks := func() float64 {
		families, err := a.Server.MetricsRegistry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, f := range families {
			if f.GetName() == "ccauthz_checks_total" {
				for _, m := range f.GetMetric() {
					total += m.GetCounter().GetValue()
				}
			}
		}
		return total
	}
	before := checks()
	for _, tc := range explainCases(auth) {
		if _, err := svc.Explain(ctx, tc.req); err != nil {
			t.Fatal(err)
		}
	}
	if after := checks(); after != before {
		t.Fatalf("Explain counted checks: %v -> %v", before, after)
	}
	for _, tc := range explainCases(auth) {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := a.Server.Check(ctx, api.CheckRequest(tc.req))
			checkReason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
			checkStatus := int32(200)
			if d := resp.GetDeniedResponse(); d != nil {
				checkStatus = int32(d.GetStatus().GetCode())
			}
			ex, err := svc.Explain(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			d := ex.GetDecision()
			if checkReason != tc.want || d.GetReason() != tc.want {
				t.Fatalf("reason: check %q, explain %q, want %q", checkReason, d.GetReason(), tc.want)
			}
			if d.GetStatus() != checkStatus || d.GetAllow() != (resp.GetOkResponse() != nil) {
				t.Fatalf("explain %d allow=%v, check %d ok=%v", d.GetStatus(), d.GetAllow(), checkStatus, resp.GetOkResponse() != nil)
			}
			if body := resp.GetDeniedResponse().GetBody(); body != "" && strings.TrimSpace(body) != d.GetBody() {
				var cb, eb any
				if json.Unmarshal([]byte(body), &cb) != nil || json.Unmarshal([]byte(d.GetBody()), &eb) != nil || !jsonEqual(cb, eb) {
					t.Fatalf("body: check %s, explain %s", body, d.GetBody())
				}
			}
			trace := ex.GetTrace()
			if len(trace) == 0 {
				t.Fatal("empty trace")
			}
			failed := 0
			for _, s := range trace {
				if s.GetOutcome() == ccauthzv1.TraceStep_OUTCOME_FAIL {
					failed++
				}
				if strings.Contains(s.GetDetail(), strings.TrimPrefix(auth, "Bearer ")) {
					t.Fatalf("trace step %q shows the token", s.GetName())
				}
			}
			if d.GetAllow() != (failed == 0) {
				t.Fatalf("allow=%v but %d failed steps: %v", d.GetAllow(), failed, trace)
			}
		})
	}
	if checks() == before {
		t.Fatal("ccauthz_checks_total did not move for Check either: the metric check above proves nothing")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestExplainAdminJSON: the admin listener serves Explain as protojson.
func TestExplainAdminJSON(t *testing.T) {
	a, auth := assemble(t)
	svc := &api.Services{Decision: api.NewDecisionService(func() api.Explainer { return a.Server.Explain }), Admin: true,
		Catalog: api.NewCatalogService(nil, nil)}
	mux := http.NewServeMux()
	svc.AdminRoutes(mux)
	body, _ := protojson.Marshal(&ccauthzv1.ExplainRequest{Method: "POST", Path: "/v2/code/generations", Host: "cloud.gitlab.com",
		Headers: map[string]string{"authorization": auth, "x-gitlab-authentication-type": "oidc", "x-gitlab-instance-id": instance, "x-gitlab-realm": "self-managed"}})
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/api/ccauthz.v1.DecisionService/Explain", strings.NewReader(string(body))))
	var got ccauthzv1.ExplainResponse
	if w.Code != 200 || protojson.Unmarshal(w.Body.Bytes(), &got) != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got.GetDecision().GetReason() != "insufficient_scope" || !strings.Contains(w.Body.String(), `"unit_primitives"`) {
		t.Fatalf("got %s", w.Body)
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("POST", "/api/ccauthz.v1.DecisionService/Explain", strings.NewReader(`{"path": 3}`)))
	if w.Code != 400 {
		t.Fatalf("bad request: %d %s", w.Code, w.Body)
	}
}
