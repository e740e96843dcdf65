package envoy

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/policy"
)

func TestMapRequestSourceAddress(t *testing.T) {
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 5555}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/"}},
	}}
	var r Request
	if err := MapRequest(req, &r); err != nil {
		t.Fatal(err)
	}
	if r.SourceAddress != "203.0.113.7" {
		t.Fatalf("source address %q", r.SourceAddress)
	}
}

func TestResponseRateLimitedDescriptor(t *testing.T) {
	d := policy.Decision{Status: 429, Reason: policy.ReasonRateLimited, Body: map[string]any{"detail": "x"},
		ResponseHeaders: map[string]string{"retry-after": "3"}}
	resp := NewResponder().Response(&Outcome{Decision: &d, DecisionID: "id", RateLimited: "limit=per_user,backend=b"})
	md := resp.GetDynamicMetadata().GetFields()
	if got := md[MetaRateLimited].GetStringValue(); got != "limit=per_user,backend=b" {
		t.Fatalf("%s = %q", MetaRateLimited, got)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 429 {
		t.Fatalf("status %v", got)
	}
	var retry string
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "retry-after" {
			retry = h.GetHeader().GetValue()
		}
	}
	if retry != "3" {
		t.Fatalf("retry-after %q", retry)
	}
	plain := NewResponder().Response(&Outcome{Decision: &d, DecisionID: "id"})
	if _, ok := plain.GetDynamicMetadata().GetFields()[MetaRateLimited]; ok {
		t.Fatal("descriptor key set without a rate-limited outcome")
	}
}
