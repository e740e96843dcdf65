package envoy

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/policy"
)

// wireOutcomes are outcomes of every shape Response renders: allow, deny
// (HTTP and gRPC backend), dry-run allow of a denial, faults without a
// backend, a status outside 4xx/5xx, limit overrides, the local rate
// limiter's descriptor, strings that need UTF-8 repair, and empty bodies.
func wireOutcomes() map[string]*Outcome {
	allow := policy.Decision{
		Allow: true, Status: 200, Reason: policy.ReasonAllowed, Route: "code_completions",
		UnitPrimitives: []string{"complete_code"},
		Headers: map[string]string{"x-ccauthz-decision": "allow", "x-ccauthz-route": "code_completions",
			"x-ccauthz-unit-primitive": "complete_code", "x-ccauthz-subject": "8f6e4253", "x-ccauthz-realm": "self-managed", "x-ccauthz-issuer": "gitlab_com"},
		HeadersToRemove: []string{"x-gitlab-secret", "x-ccauthz-x"},
		RateLimit: policy.RateLimit{
			Entries: map[string]string{"backend": "ai_gateway", "instance_id": "i-1", "unit_primitive": "complete_code", "custom": "c"},
			Limit:   &policy.LimitOverride{RequestsPerUnit: 50, Unit: "minute"},
		},
	}
	deny := policy.Decision{
		Status: 403, Reason: policy.ReasonInsufficientScope, Route: "code_generations",
		UnitPrimitives:  []string{"generate_code", "complete_code"},
		Body:            map[string]any{"detail": "Unauthorized to access code generations"},
		ResponseHeaders: map[string]string{"www-authenticate": `Bearer error="insufficient_scope"`},
		HeadersToRemove: []string{"x-ccauthz-decision"},
		RateLimit:       policy.RateLimit{Entries: map[string]string{"instance_id": "i-2"}},
	}
	bad := policy.Decision{
		Allow: true, Reason: policy.ReasonAllowed, Route: "r\xff",
		UnitPrimitives:  []string{"a\xfe", "b"},
		Headers:         map[string]string{"x-echo": "v\xffv", "x\xfe": "k"},
		HeadersToRemove: []string{"x-\xff"},
		RateLimit:       policy.RateLimit{Entries: map[string]string{"k\xff": "v\xfe"}},
	}
	weird := deny
	weird.Status, weird.Reason, weird.Body = 302, "made_up\xff", nil
	empty := deny
	empty.Body = nil
	ctype := deny
	ctype.ResponseHeaders = map[string]string{"content-type": "text/plain"}
	badBody := deny
	badBody.Body = map[string]any{"detail": "echoed \xff\xfe value"}
	fault := policy.Fault(policy.ReasonDeadlineExceeded, "ai_gateway")
	meta := NewBackendMeta("ai_gateway", "rev1")
	grpcMeta := NewBackendMeta("duo_workflow", "rev2")
	grpcMeta.GRPC = true
	big := allow
	big.Route = string(make([]byte, 300)) // lengths past one varint byte
	big.RateLimit.Entries = map[string]string{}
	for i := range 40 {
		big.RateLimit.Entries[string(rune('a'+i%26))+string(rune('a'+i/26))] = string(make([]byte, 200))
	}
	return map[string]*Outcome{
		"allow":                   {Decision: &allow, DecisionID: "d-1", Backend: meta, Path: "/v2/code/completions"},
		"deny":                    {Decision: &deny, DecisionID: "d-2", Backend: meta},
		"deny grpc backend":       {Decision: &deny, DecisionID: "d-3", Backend: grpcMeta},
		"dry-run denial":          {Decision: &deny, DecisionID: "d-4", Backend: meta, DryRun: true},
		"dry-run allow":           {Decision: &allow, DecisionID: "d-5", Backend: meta, DryRun: true},
		"fault no backend":        {Decision: &fault, DecisionID: "d-6"},
		"rate limited":            {Decision: &deny, DecisionID: "d-7", Backend: meta, RateLimited: "limit=per_instance,instance_id=i-2"},
		"invalid utf-8":           {Decision: &bad, DecisionID: "d-8\xff", Backend: meta, RateLimited: "x\xff"},
		"odd status":              {Decision: &weird, DecisionID: "d-9", Backend: meta},
		"empty body":              {Decision: &empty, DecisionID: "d-10", Backend: meta},
		"own content-type":        {Decision: &ctype, DecisionID: "d-11", Backend: meta},
		"long fields":             {Decision: &big, DecisionID: "d-12", Backend: meta},
		"invalid utf-8 body":      {Decision: &badBody, DecisionID: "d-13", Backend: meta},
		"invalid utf-8 grpc body": {Decision: &badBody, DecisionID: "d-14", Backend: grpcMeta},
	}
}

// TestWireMatchesResponse: AppendWire's bytes decode, with go-control-plane's
// types, to exactly the message Response builds, for every outcome shape.
func TestWireMatchesResponse(t *testing.T) {
	r := NewResponder(policy.ReasonAllowed, policy.ReasonInsufficientScope, policy.ReasonDeadlineExceeded)
	for name, o := range wireOutcomes() {
		t.Run(name, func(t *testing.T) {
			want := r.Response(o)
			prefix := []byte{0xde, 0xad}
			b := r.AppendWire(prefix, o)
			if b[0] != 0xde || b[1] != 0xad {
				t.Fatalf("AppendWire overwrote the bytes before it")
			}
			got := &authv3.CheckResponse{}
			if err := proto.Unmarshal(b[2:], got); err != nil {
				t.Fatalf("the fast path's bytes do not decode: %v", err)
			}
			if len(got.ProtoReflect().GetUnknown()) != 0 {
				t.Errorf("unknown fields in the fast path's bytes: %x", got.ProtoReflect().GetUnknown())
			}
			if !proto.Equal(want, got) {
				t.Errorf("fast path differs from Response:\nslow %s\nfast %s", prototext.Format(want), prototext.Format(got))
			}
			// And the slow path's own encoding decodes to the same message.
			slow, err := proto.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			again := &authv3.CheckResponse{}
			if err := proto.Unmarshal(slow, again); err != nil || !proto.Equal(again, got) {
				t.Errorf("slow path's bytes decode differently (err %v)", err)
			}
		})
	}
}

func BenchmarkResponseMarshal(b *testing.B) {
	r := NewResponder(policy.ReasonAllowed)
	o := wireOutcomes()["allow"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(r.Response(o)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendWire(b *testing.B) {
	r := NewResponder(policy.ReasonAllowed)
	o := wireOutcomes()["allow"]
	buf := make([]byte, 0, WireSizeHint)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendWire(buf[:0], o)
	}
}
