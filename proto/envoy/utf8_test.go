package envoy

import (
	"bytes"
	"errors"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// invalidUTF8Request is the wire form of a CheckRequest whose headers map
// holds a value that is not UTF-8 (Go's encoder refuses to write one, so
// the bytes are patched in).
func invalidUTF8Request(t testing.TB) []byte {
	t.Helper()
	req := checkRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/v2/code/completions",
		Headers: map[string]string{"x-gitlab-instance-id": "inst-PATCH", "x-gitlab-realm": "saas"}},
		map[string]string{"backend": "ai_gateway"})
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte("PATCH"), []byte("\xff\xfe\xc0\xae!"), 1)
}

func TestUnmarshalCheckRequestInvalidUTF8(t *testing.T) {
	data := invalidUTF8Request(t)
	if err := proto.Unmarshal(data, &authv3.CheckRequest{}); err == nil {
		t.Fatal("fixture: proto.Unmarshal accepted invalid UTF-8")
	}
	var req authv3.CheckRequest
	if err := UnmarshalCheckRequest(data, &req); err != nil {
		t.Fatalf("UnmarshalCheckRequest: %v", err)
	}
	ext := req.GetAttributes().GetContextExtensions()
	if ext[ContextExtensionInvalidUTF8] != "envoy.service.auth.v3.AttributeContext.HttpRequest.HeadersEntry.value" || ext["backend"] != "ai_gateway" {
		t.Errorf("context extensions %v", ext)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	if h.GetHeaders()["x-gitlab-instance-id"] != "inst-\uFFFD!" || h.GetHeaders()["x-gitlab-realm"] != "saas" || h.GetPath() != "/v2/code/completions" {
		t.Errorf("decoded %v", h)
	}
	var r Request
	err := MapRequest(&req, &r)
	var bad *BadRequestError
	if !errors.As(err, &bad) || err.Error() != "the check request has a string that is not valid UTF-8 (in envoy.service.auth.v3.AttributeContext.HttpRequest.HeadersEntry.value)" {
		t.Errorf("MapRequest: %v", err)
	}

	// Valid requests decode as proto.Unmarshal does; broken wire data is
	// still an error.
	good, _ := proto.Marshal(checkRequest(&authv3.AttributeContext_HttpRequest{Path: "/"}, nil))
	req.Reset()
	if err := UnmarshalCheckRequest(good, &req); err != nil || req.GetAttributes().GetRequest().GetHttp().GetPath() != "/" {
		t.Errorf("valid request: %v %v", &req, err)
	}
	if err := UnmarshalCheckRequest(data[:len(data)-3], &req); err == nil {
		t.Error("truncated wire data decoded")
	}
}

// FuzzUnmarshalCheckRequest: any bytes the gRPC server receives either fail
// to decode as protobuf at all, or become a request whose mapping is a
// decision (mapped, or refused with a 400 error) and whose CheckResponse
// marshals: invalid UTF-8 never becomes a gRPC error.
func FuzzUnmarshalCheckRequest(f *testing.F) {
	f.Add(invalidUTF8Request(f))
	good, _ := proto.Marshal(checkRequest(&authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/a/../b?x=1",
		Headers: map[string]string{"x-gitlab-realm": "saas", "authorization": "Bearer t"}}, map[string]string{"backend": "ai_gateway"}))
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req authv3.CheckRequest
		if err := UnmarshalCheckRequest(data, &req); err != nil {
			if proto.Unmarshal(data, &authv3.CheckRequest{}) == nil {
				t.Fatalf("UnmarshalCheckRequest failed on bytes proto.Unmarshal accepts: %v", err)
			}
			return
		}
		var r Request
		if err := MapRequest(&req, &r); err == nil {
			_ = r.CanonicalPath(requestpath.Default())
		} else if !errors.Is(err, ErrNoHTTPRequest) {
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("MapRequest: %v", err)
			}
		}
		d := policy.Decision{Status: 403, Route: r.Input.Path, Headers: r.Input.Headers,
			RateLimit: policy.RateLimit{Entries: r.Input.Headers}, Body: map[string]any{"q": r.Input.Query}}
		if _, err := proto.Marshal(NewResponder().Response(&Outcome{Decision: &d, DecisionID: r.RequestID})); err != nil {
			t.Fatalf("CheckResponse does not marshal: %v", err)
		}
	})
}
