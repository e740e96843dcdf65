package assembly

import (
	"context"
	"testing"
)

// TestBodyRulesThroughCheck sends code suggestions bodies the way Envoy's
// with_request_body does (raw_body plus x-envoy-auth-partial-body) through
// the assembled server and the real policy: a completion is allowed with
// complete_code, a generation is refused, a cut body and a missing one are
// 400s. It needs the example manifest's body rules; before they exist
// every row would be allowed, and it says so instead of passing.
func TestBodyRulesThroughCheck(t *testing.T) {
	a, auth := assemble(t)
	if resp, _ := a.Server.Check(context.Background(), checkRequest("/v4/code/suggestions", auth)); resp.GetOkResponse() != nil {
		t.Skip("the ai_gateway example manifest has no body rules for /v4/code/suggestions yet")
	}
	for _, tc := range []struct {
		name, body, partial string
		status              int32
		detail              string
	}{
		{"completion", `{"prompt_components":[{"type":"code_editor_completion","payload":{}}]}`, "false", 200, ""},
		{"generation without generate_code", `{"prompt_components":[{"type":"code_editor_generation","payload":{}}]}`, "false", 403,
			`{"detail":"Unauthorized to access code suggestions"}`},
		{"cut by Envoy", `{"prompt_components":[{"type":"code_editor_completion","payload":{}}]}`, "true", 400, ""},
		{"no body", "", "", 400, ""},
		{"not JSON", `prompt=x`, "false", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := checkRequest("/v4/code/suggestions", auth)
			req.Attributes.Request.Http.RawBody = []byte(tc.body)
			if tc.partial != "" {
				req.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = tc.partial
			}
			resp, _ := a.Server.Check(context.Background(), req)
			got, body := int32(200), ""
			if d := resp.GetDeniedResponse(); d != nil {
				got, body = int32(d.GetStatus().GetCode()), d.GetBody()
			}
			if got != tc.status || (tc.detail != "" && body != tc.detail) {
				t.Errorf("status %d body %s, want %d %s", got, body, tc.status, tc.detail)
			}
		})
	}
}
