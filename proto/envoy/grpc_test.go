package envoy

import (
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccauthz/ccauthz/policy"
)

func TestPercentEncodeGRPC(t *testing.T) {
	for in, want := range map[string]string{
		"Unauthorized to execute workflow": "Unauthorized to execute workflow",
		"100% sure":                        "100%25 sure",
		"line\nbreak":                      "line%0Abreak",
		"ünï":                              "%C3%BCn%C3%AF",
		"":                                 "",
	} {
		if got := PercentEncodeGRPC(in); got != want {
			t.Errorf("PercentEncodeGRPC(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestResponseGRPCBackend: a denial for a gRPC backend carries grpc-status
// and a plain-text body (Envoy's grpc-message); an HTTP backend's keeps its
// JSON body; allows are the same for both.
func TestResponseGRPCBackend(t *testing.T) {
	r := NewResponder()
	grpcMeta := NewBackendMeta("duo_workflow_service", "rev")
	grpcMeta.GRPC = true
	tests := []struct {
		name    string
		d       policy.Decision
		code    codes.Code
		message string
	}{
		{"403 detail", policy.Decision{Status: 403, Reason: policy.ReasonInsufficientScope,
			Body:            map[string]any{"detail": "Unauthorized to execute workflow"},
			ResponseHeaders: map[string]string{"www-authenticate": `Bearer error="insufficient_scope"`}},
			codes.PermissionDenied, "Unauthorized to execute workflow"},
		{"401 error", policy.Decision{Status: 401, Reason: policy.ReasonMissingAuthorization,
			Body: map[string]any{"error": "No authorization header presented"}},
			codes.Unauthenticated, "No authorization header presented"},
		{"404 no route", policy.Decision{Status: 404, Reason: policy.ReasonNoRoute, Body: map[string]any{"detail": "Not Found"}},
			codes.Unimplemented, "Not Found"},
		{"400", policy.Decision{Status: 400, Reason: "bad_request", Body: map[string]any{"error": "bad"}},
			codes.InvalidArgument, "bad"},
		{"429", policy.Decision{Status: 429, Reason: policy.ReasonRateLimited, Body: map[string]any{"error": "Too many requests"}},
			codes.ResourceExhausted, "Too many requests"},
		{"503 without body", policy.Decision{Status: 503, Reason: policy.ReasonKeysUnavailable},
			codes.Unavailable, "keys_unavailable"},
		{"no usable status", policy.Decision{Status: 200, Reason: policy.ReasonExtraPolicyDeny},
			codes.PermissionDenied, "extra_policy_deny"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := r.Response(&Outcome{Decision: &tc.d, DecisionID: "id", Backend: grpcMeta})
			den := resp.GetDeniedResponse()
			if den == nil {
				t.Fatalf("not denied: %v", resp)
			}
			h := map[string]string{}
			for _, o := range den.GetHeaders() {
				h[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
			}
			if h["grpc-status"] != strconv.Itoa(int(tc.code)) || h["grpc-message"] != PercentEncodeGRPC(tc.message) || den.GetBody() != tc.message {
				t.Errorf("headers %v body %q; want grpc-status %d, message %q", h, den.GetBody(), tc.code, tc.message)
			}
			if h["content-type"] != "" {
				t.Errorf("content-type %q: Envoy sets application/grpc itself", h["content-type"])
			}
			for k, v := range tc.d.ResponseHeaders {
				if h[k] != v {
					t.Errorf("response header %s = %q, want %q", k, h[k], v)
				}
			}
			// The same decision for an HTTP backend keeps the JSON body.
			httpResp := r.Response(&Outcome{Decision: &tc.d, DecisionID: "id", Backend: NewBackendMeta("ai_gateway", "rev")})
			if body := httpResp.GetDeniedResponse().GetBody(); len(body) == 0 || body[0] != '{' {
				t.Errorf("HTTP backend body %q, want JSON", body)
			}
		})
	}
	allow := policy.Decision{Allow: true, Status: 200, Reason: policy.ReasonAllowed}
	if resp := r.Response(&Outcome{Decision: &allow, Backend: grpcMeta}); resp.GetOkResponse() == nil {
		t.Errorf("allow for a gRPC backend: %v", resp)
	}
}
