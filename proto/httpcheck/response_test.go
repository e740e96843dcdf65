package httpcheck

import (
	"net/http/httptest"
	"testing"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// TestWriteDirectGRPCBackend: Envoy's http_service (and forward-auth) get a
// gRPC backend's denial as grpc-status plus a plain-text body, which Envoy
// turns into grpc-message; an HTTP backend keeps the JSON body.
func TestWriteDirectGRPCBackend(t *testing.T) {
	d := policy.Decision{Status: 403, Reason: policy.ReasonInsufficientScope,
		Body:            map[string]any{"detail": "Unauthorized to generate token"},
		ResponseHeaders: map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`}}
	meta := envoy.NewBackendMeta("duo_workflow_service", "rev")
	meta.GRPC = true
	w := httptest.NewRecorder()
	WriteDirect(w, &envoy.Outcome{Decision: &d, DecisionID: "id-1", Backend: meta}, true)
	h := w.Header()
	if w.Code != 403 || h.Get("Grpc-Status") != "7" || h.Get("Grpc-Message") != "Unauthorized to generate token" ||
		w.Body.String() != "Unauthorized to generate token" || h.Get("Www-Authenticate") == "" || h.Get(HeaderDecisionID) != "id-1" {
		t.Errorf("status %d headers %v body %q", w.Code, h, w.Body.String())
	}
	d401 := policy.Decision{Status: 401, Reason: policy.ReasonInvalidToken, Body: map[string]any{"error": "Forbidden by auth provider"}}
	w = httptest.NewRecorder()
	WriteDirect(w, &envoy.Outcome{Decision: &d401, DecisionID: "id-2", Backend: meta}, false)
	if w.Code != 401 || w.Header().Get("Grpc-Status") != "16" || w.Body.String() != "Forbidden by auth provider" {
		t.Errorf("401: status %d headers %v body %q", w.Code, w.Header(), w.Body.String())
	}
	w = httptest.NewRecorder()
	WriteDirect(w, &envoy.Outcome{Decision: &d, DecisionID: "id-3", Backend: envoy.NewBackendMeta("ai_gateway", "rev")}, true)
	if w.Header().Get("Grpc-Status") != "" || w.Body.String() != `{"detail":"Unauthorized to generate token"}` {
		t.Errorf("HTTP backend: headers %v body %q", w.Header(), w.Body.String())
	}
}
