package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/policy"
)

// FuzzAdminJSON posts arbitrary bodies to every ccauthz.v1 JSON route of
// the admin listener (CatalogService over the example catalog, and
// DecisionService.Explain over an explainer that echoes a fixed denial).
// No body may crash the handler; every answer is JSON, and a status other
// than 200 carries the {"code","message"} error shape.
func FuzzAdminJSON(f *testing.F) {
	routes := []string{
		"/api/ccauthz.v1.CatalogService/ListUnitPrimitives",
		"/api/ccauthz.v1.CatalogService/GetUnitPrimitive",
		"/api/ccauthz.v1.CatalogService/ListBackends",
		"/api/ccauthz.v1.CatalogService/ListAddOns",
		"/api/ccauthz.v1.CatalogService/Grant",
		"/api/ccauthz.v1.DecisionService/Explain",
	}
	seeds := []string{
		``, `{}`, `{"name":"duo_chat"}`, `{"name":"nope"}`, `{"add_ons":["duo_pro"]}`, `{"addOns":["duo_enterprise"],"tier":"ultimate"}`,
		`{"backend":"ai_gateway","method":"POST","path":"/v2/code/completions","headers":{"Authorization":"Bearer x"},"body":"e30="}`,
		`{"path":"\u0000"}`, `{"headers":{"a":1}}`, `[`, `{"name":` + string(bytes.Repeat([]byte("["), 200)),
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	s := exampleServices()
	s.Decision = NewDecisionService(func() Explainer {
		return func(_ context.Context, req *authv3.CheckRequest) *server.Explained {
			return &server.Explained{Decision: policy.Decision{Status: 403, Reason: "insufficient_scope", Body: map[string]any{"detail": req.GetAttributes().GetRequest().GetHttp().GetPath()}}}
		}
	})
	mux := http.NewServeMux()
	s.AdminRoutes(mux)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", routes[int(route)%len(routes)], bytes.NewReader(body)))
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body.String())
		}
		if rec.Code != http.StatusOK {
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["code"] == "" || e["message"] == "" {
				t.Fatalf("status %d without the error shape: %q", rec.Code, rec.Body.String())
			}
		}
	})
}
