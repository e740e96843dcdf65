package envoy

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ccauthz/ccauthz/policy"
)

func stringLeaves(t *testing.T, s *structpb.Struct) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range s.GetFields() {
		if k == MetaRateLimitOverride {
			continue
		}
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			t.Fatalf("metadata %q is %T, want a string leaf", k, v.GetKind())
		}
		out[k] = sv.StringValue
	}
	return out
}

func TestResponseAllow(t *testing.T) {
	r := NewResponder(policy.ReasonAllowed)
	d := &policy.Decision{
		Allow: true, Status: 200, Reason: policy.ReasonAllowed, Route: "code_completions",
		UnitPrimitives:  []string{"complete_code"},
		Headers:         map[string]string{"x-b": "2", "x-a": "1"},
		HeadersToRemove: []string{"x-gitlab-secret"},
		RateLimit: policy.RateLimit{
			Entries: map[string]string{"instance_id": "i-1", "unit_primitive": "complete_code"},
			Limit:   &policy.LimitOverride{RequestsPerUnit: 50, Unit: "minute"},
		},
	}
	resp := r.Response(&Outcome{Decision: d, DecisionID: "d-1", Backend: NewBackendMeta("ai_gateway", "rev1")})
	if resp.GetStatus().GetCode() != int32(code.Code_OK) {
		t.Fatalf("rpc status = %v, want OK", resp.GetStatus())
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want OkResponse, got %T", resp.GetHttpResponse())
	}
	var got [][3]string
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %q append action = %v", h.GetHeader().GetKey(), h.GetAppendAction())
		}
		got = append(got, [3]string{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
	}
	if want := [][3]string{{"x-a", "1"}, {"x-b", "2"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("headers = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(ok.GetHeadersToRemove(), []string{"x-gitlab-secret"}) {
		t.Errorf("headers_to_remove = %v", ok.GetHeadersToRemove())
	}
	wantMeta := map[string]string{
		MetaDecisionID: "d-1", MetaBackend: "ai_gateway", MetaPolicyRevision: "rev1", MetaReason: "allowed",
		MetaRoute: "code_completions", MetaStatus: "200", MetaUnitPrimitive: "complete_code", MetaDryRun: "false",
		"ratelimit.instance_id": "i-1", "ratelimit.unit_primitive": "complete_code",
	}
	if got := stringLeaves(t, resp.GetDynamicMetadata()); !reflect.DeepEqual(got, wantMeta) {
		t.Errorf("metadata = %v\nwant       %v", got, wantMeta)
	}
	lim := resp.GetDynamicMetadata().GetFields()[MetaRateLimitOverride].GetStructValue().GetFields()
	if lim["requests_per_unit"].GetNumberValue() != 50 || lim["unit"].GetStringValue() != "minute" {
		t.Errorf("limit override = %v", lim)
	}
}

func TestResponseDeny(t *testing.T) {
	r := NewResponder()
	tests := []struct {
		status   int
		reason   policy.Reason
		wantCode code.Code
		wantHTTP int
	}{
		{401, policy.ReasonInvalidToken, code.Code_UNAUTHENTICATED, 401},
		{403, policy.ReasonInsufficientScope, code.Code_PERMISSION_DENIED, 403},
		{400, policy.ReasonMissingUnitPrimitive, code.Code_PERMISSION_DENIED, 400},
		{503, policy.ReasonDeadlineExceeded, code.Code_UNAVAILABLE, 503},
		{500, policy.ReasonInternalError, code.Code_INTERNAL, 500},
		{0, policy.ReasonNoRoute, code.Code_PERMISSION_DENIED, 403}, // unusable status stays closed
	}
	for _, tc := range tests {
		d := &policy.Decision{
			Status: tc.status, Reason: tc.reason,
			Body:            map[string]any{"error": "Header mismatch 'X-Gitlab-Realm'", "n": float64(3)},
			ResponseHeaders: map[string]string{"www-authenticate": `Bearer error="invalid_token"`},
		}
		resp := r.Response(&Outcome{Decision: d, DecisionID: "d"})
		if resp.GetStatus().GetCode() != int32(tc.wantCode) {
			t.Errorf("%s: rpc code = %v, want %v", tc.reason, resp.GetStatus().GetCode(), tc.wantCode)
		}
		den := resp.GetDeniedResponse()
		if den == nil {
			t.Fatalf("%s: want DeniedResponse", tc.reason)
		}
		if int(den.GetStatus().GetCode()) != tc.wantHTTP {
			t.Errorf("%s: http status = %v, want %d", tc.reason, den.GetStatus().GetCode(), tc.wantHTTP)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil || !reflect.DeepEqual(body, d.Body) {
			t.Errorf("%s: body %q (err %v), want %v", tc.reason, den.GetBody(), err, d.Body)
		}
		hs := map[string]string{}
		for _, h := range den.GetHeaders() {
			hs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if hs["content-type"] != "application/json" || hs["www-authenticate"] != `Bearer error="invalid_token"` {
			t.Errorf("%s: headers = %v", tc.reason, hs)
		}
		if got := stringLeaves(t, resp.GetDynamicMetadata())[MetaReason]; got != string(tc.reason) {
			t.Errorf("%s: metadata reason = %q", tc.reason, got)
		}
	}
}

func TestResponseDryRunDeny(t *testing.T) {
	r := NewResponder(policy.ReasonInsufficientScope)
	d := &policy.Decision{Status: 403, Reason: policy.ReasonInsufficientScope, Body: map[string]any{"detail": "x"},
		Headers: map[string]string{"x-must-not": "be added"}}
	resp := r.Response(&Outcome{Decision: d, DecisionID: "d", DryRun: true})
	if resp.GetOkResponse() == nil || resp.GetStatus().GetCode() != int32(code.Code_OK) {
		t.Fatalf("dry-run deny must be allowed, got %v", resp)
	}
	if len(resp.GetOkResponse().GetHeaders()) != 0 {
		t.Errorf("dry-run deny added allow headers: %v", resp.GetOkResponse().GetHeaders())
	}
	md := stringLeaves(t, resp.GetDynamicMetadata())
	if md[MetaDryRun] != "true" || md[MetaWouldDeny] != "insufficient_scope" {
		t.Errorf("metadata = %v", md)
	}
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, "plain", "q\"uote\\ \n\t\x01 <>&", "\u2028\u2029 é 日本", float64(1), 1.5, -0.25, 1e21, true, 7,
		[]any{"a", float64(2), nil, map[string]any{"z": "1", "a": []any{}}},
		[]string{"x", "y"}, map[string]string{"b": "2", "a": "1"},
		map[string]any{"error": "No authorization header presented", "detail": map[string]any{"k": false}},
	}
	for _, v := range values {
		got := AppendJSON(nil, v)
		var back, want any
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("AppendJSON(%#v) = %s: not JSON: %v", v, got, err)
		}
		ref, _ := json.Marshal(v)
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(back, want) {
			t.Errorf("AppendJSON(%#v) = %s, want the value of %s", v, got, ref)
		}
	}
	if got := string(AppendJSON(nil, math.NaN())); got != "null" {
		t.Errorf("NaN = %s", got)
	}
	if got := string(AppendJSON(nil, "\xff")); got != `"\ufffd"` {
		t.Errorf("invalid UTF-8 = %s", got)
	}
}

// FuzzAppendJSON checks that denial bodies are always valid JSON that
// decodes back to the same strings (invalid UTF-8 becomes U+FFFD, as
// encoding/json does).
func FuzzAppendJSON(f *testing.F) {
	f.Add("Header mismatch 'X-Gitlab-Realm'", "error")
	f.Add("\x00\u2028\"\\<>&\xff", "k\n")
	f.Fuzz(func(t *testing.T, v, k string) {
		b := AppendJSON(nil, map[string]any{k: v, "list": []any{v}})
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q is not JSON: %v", b, err)
		}
		ref, _ := json.Marshal(map[string]any{k: v, "list": []any{v}})
		var want map[string]any
		_ = json.Unmarshal(ref, &want)
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("AppendJSON = %s, encoding/json = %s", b, ref)
		}
	})
}

// TestResponseIsAlwaysEncodable: strings that are not UTF-8, wherever a
// policy puts them, still give a CheckResponse that marshals (the bug was a
// gRPC INTERNAL error instead of the denial).
func TestResponseIsAlwaysEncodable(t *testing.T) {
	bad := "i-\xff\xc0\xae"
	for _, allow := range []bool{true, false} {
		d := &policy.Decision{
			Allow: allow, Status: 401, Reason: policy.Reason("r" + bad), Route: bad,
			Body:            map[string]any{"error": bad},
			UnitPrimitives:  []string{bad},
			Headers:         map[string]string{"x-a" + bad: bad},
			HeadersToRemove: []string{bad},
			ResponseHeaders: map[string]string{"www-authenticate": bad},
			RateLimit:       policy.RateLimit{Entries: map[string]string{"instance_id" + bad: bad}, Limit: &policy.LimitOverride{RequestsPerUnit: 1, Unit: bad}},
		}
		resp := NewResponder().Response(&Outcome{Decision: d, DecisionID: "d", RateLimited: bad})
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatalf("allow=%v: response does not marshal: %v", allow, err)
		}
		var back authv3.CheckResponse
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatalf("allow=%v: response does not unmarshal: %v", allow, err)
		}
		if got := back.GetDynamicMetadata().GetFields()[MetaRoute].GetStringValue(); got != "i-\uFFFD" {
			t.Errorf("allow=%v: route %q, want the invalid bytes replaced", allow, got)
		}
	}
}
