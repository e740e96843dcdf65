package server

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/policy"
)

// TestBodyNotDecodedForAPolicyThatDoesNotReadIt: a backend whose policy has
// no body rule gets absent, whatever body the check carried (no decode).
func TestBodyNotDecodedForAPolicyThatDoesNotReadIt(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	dec := h.deciders["ai_gateway"]
	dec.noBody = true
	req := request("/v4/code/suggestions", "Bearer good-inst1", map[string]string{"backend": "ai_gateway"}, "")
	req.Attributes.Request.Http.RawBody = []byte(`{"prompt_components":[]}`)
	req.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "false"
	if _, err := h.srv.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	dec.mu.Lock()
	defer dec.mu.Unlock()
	if len(dec.inputs) != 1 || dec.inputs[0].Body.Status != policy.BodyAbsent {
		t.Fatalf("inputs %+v, want one with an absent body", dec.inputs)
	}
}

// TestBodyReachesPolicy: the request body of every protocol arrives in
// policy.Input.Body, decoded once, bounded by MaxRequestBodyBytes, and never
// in the decision log.
func TestBodyReachesPolicy(t *testing.T) {
	const secret = "body-secret-7f3a"
	obj := `{"prompt_components":[{"type":"code_editor_generation","payload":{"content":"` + secret + `"}}]}`
	wantJSON := map[string]any{"prompt_components": []any{map[string]any{"type": "code_editor_generation",
		"payload": map[string]any{"content": secret}}}}
	h := newHarness(t, Options{AllowLogSampling: 1, MaxRequestBodyBytes: 1024}, aiGateway())
	hd := h.srv.HTTPHandler()
	dec := h.deciders["ai_gateway"]
	last := func() policy.BodyInput {
		t.Helper()
		dec.mu.Lock()
		defer dec.mu.Unlock()
		if len(dec.inputs) == 0 {
			t.Fatal("the policy was not asked")
		}
		return dec.inputs[len(dec.inputs)-1].Body
	}
	grpcCheck := func(raw []byte, headers map[string]string) {
		t.Helper()
		req := request("/v4/code/suggestions", "Bearer good-inst1", map[string]string{"backend": "ai_gateway"}, "")
		req.Attributes.Request.Http.RawBody = raw
		for k, v := range headers {
			req.Attributes.Request.Http.Headers[k] = v
		}
		if _, err := h.srv.Check(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	checks := []struct {
		name   string
		run    func()
		status string
	}{
		{"grpc with_request_body", func() {
			grpcCheck([]byte(obj), map[string]string{"x-envoy-auth-partial-body": "false", "content-length": "99"})
		}, policy.BodyTruncated},
		{"grpc whole body", func() {
			grpcCheck([]byte(obj), map[string]string{"x-envoy-auth-partial-body": "false"})
		}, policy.BodyOK},
		{"grpc partial", func() {
			grpcCheck([]byte(obj[:20]), map[string]string{"x-envoy-auth-partial-body": "true"})
		}, policy.BodyTruncated},
		{"grpc over the limit", func() {
			grpcCheck([]byte(`"`+strings.Repeat("x", 2000)+`"`), map[string]string{"x-envoy-auth-partial-body": "false"})
		}, policy.BodyTooLarge},
		{"grpc no body", func() { grpcCheck(nil, nil) }, policy.BodyAbsent},
		{"grpc body, token does not verify: not decoded", func() {
			req := request("/v4/code/suggestions", "Bearer forged", map[string]string{"backend": "ai_gateway"}, "")
			req.Attributes.Request.Http.RawBody = []byte(obj)
			req.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "false"
			if _, err := h.srv.Check(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}, policy.BodyAbsent},
		{"envoy http_service", func() {
			do(hd, "POST", "/ext_authz/v4/code/suggestions", map[string]string{"Authorization": "Bearer good-inst1",
				"X-Ccauthz-Backend": "ai_gateway", "X-Envoy-Auth-Partial-Body": "false"}, obj)
		}, policy.BodyOK},
		{"forward-auth", func() {
			do(hd, "POST", "/v1/auth/forward?backend=ai_gateway", map[string]string{"Authorization": "Bearer good-inst1",
				"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/v4/code/suggestions"}, obj)
		}, policy.BodyOK},
		{"nginx", func() {
			do(hd, "GET", "/v1/auth/nginx?backend=ai_gateway", map[string]string{"Authorization": "Bearer good-inst1",
				"X-Original-Method": "POST", "X-Original-Uri": "/v4/code/suggestions"}, obj)
		}, policy.BodyAbsent},
		{"json api", func() {
			do(hd, "POST", "/v1/check", nil, `{"backend":"ai_gateway","method":"POST","path":"/v4/code/suggestions",`+
				`"headers":{"authorization":"Bearer good-inst1"},"body":`+obj+`}`)
		}, policy.BodyOK},
	}
	for _, c := range checks {
		c.run()
		got := last()
		if got.Status != c.status {
			t.Errorf("%s: body status %q, want %q", c.name, got.Status, c.status)
			continue
		}
		if got.Status == policy.BodyOK && !reflect.DeepEqual(got.JSON, wantJSON) {
			t.Errorf("%s: body JSON %#v", c.name, got.JSON)
		}
	}
	h.logs.mu.Lock()
	logs := h.logs.b.String()
	h.logs.mu.Unlock()
	if strings.Contains(logs, secret) || strings.Contains(logs, "prompt_components") {
		t.Errorf("the decision log carries the request body:\n%s", logs)
	}
	if !strings.Contains(logs, `"body_status":"truncated"`) {
		t.Errorf("the decision log lacks body_status:\n%s", logs)
	}
}

// TestGRPCBackendHTTPService: a gRPC backend's denial through Envoy's
// http_service mode carries grpc-status and the plain message; through
// gRPC ext_authz the same (both rendered from the backend's flag).
func TestGRPCBackendHTTPService(t *testing.T) {
	dws := &Backend{Name: "duo_workflow_service", Audience: "gitlab-duo-workflow-service", GRPC: true}
	h := newHarness(t, Options{}, dws)
	w := do(h.srv.HTTPHandler(), "POST", "/ext_authz/DuoWorkflow/ExecuteWorkflow",
		map[string]string{"X-Ccauthz-Backend": "duo_workflow_service", "Content-Type": "application/grpc"}, "")
	if w.Code != 401 || w.Header().Get("Grpc-Status") != "16" || strings.HasPrefix(w.Body.String(), "{") || w.Body.Len() == 0 {
		t.Errorf("http_service: status %d headers %v body %q", w.Code, w.Header(), w.Body.String())
	}
	resp, err := h.srv.Check(context.Background(), request("/DuoWorkflow/ExecuteWorkflow", "", map[string]string{"backend": "duo_workflow_service"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	den := resp.GetDeniedResponse()
	var grpcStatus string
	for _, o := range den.GetHeaders() {
		if o.GetHeader().GetKey() == "grpc-status" {
			grpcStatus = o.GetHeader().GetValue()
		}
	}
	if den.GetStatus().GetCode() != 401 || grpcStatus != "16" || den.GetBody() != w.Body.String() {
		t.Errorf("grpc: %v (http_service body %q)", den, w.Body.String())
	}
}
