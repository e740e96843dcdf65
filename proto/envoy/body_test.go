package envoy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/policy"
)

func TestDecodeBody(t *testing.T) {
	const max = 64
	obj := `{"prompt_components":[{"type":"code_editor_completion"}]}`
	tests := []struct {
		name string
		body Body
		want policy.BodyInput
	}{
		{"absent", Body{DeclaredLength: -1}, policy.BodyInput{Status: policy.BodyAbsent}},
		{"absent even with data", Body{Data: []byte(obj), DeclaredLength: -1}, policy.BodyInput{Status: policy.BodyAbsent}},
		{"ok object", Body{Present: true, Data: []byte(obj), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyOK, Size: len(obj), JSON: map[string]any{
				"prompt_components": []any{map[string]any{"type": "code_editor_completion"}}}}},
		{"ok with matching content-length", Body{Present: true, Data: []byte(`[1, 2]`), DeclaredLength: 6},
			policy.BodyInput{Status: policy.BodyOK, Size: 6, JSON: []any{1.0, 2.0}}},
		{"ok scalar", Body{Present: true, Data: []byte(` "s" `), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyOK, Size: 5, JSON: "s"}},
		{"ok null", Body{Present: true, Data: []byte(`null`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyOK, Size: 4}},
		{"exactly max", Body{Present: true, Data: []byte(`"` + strings.Repeat("a", max-2) + `"`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyOK, Size: max, JSON: strings.Repeat("a", max-2)}},
		{"over max", Body{Present: true, Data: []byte(`"` + strings.Repeat("a", max-1) + `"`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyTooLarge, Size: max + 1}},
		{"declared over max, partial", Body{Present: true, Data: []byte(`{"a":`), Partial: true, DeclaredLength: max + 1},
			policy.BodyInput{Status: policy.BodyTooLarge, Size: 5}},
		{"partial header", Body{Present: true, Data: []byte(`{"a":1}`), Partial: true, DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyTruncated, Size: 7}},
		{"shorter than declared", Body{Present: true, Data: []byte(`{"a":1}`), DeclaredLength: 20},
			policy.BodyInput{Status: policy.BodyTruncated, Size: 7}},
		{"longer than declared", Body{Present: true, Data: []byte(`{"a":1}`), DeclaredLength: 3},
			policy.BodyInput{Status: policy.BodyInvalid, Size: 7}},
		{"empty", Body{Present: true, DeclaredLength: -1}, policy.BodyInput{Status: policy.BodyInvalid}},
		{"not json", Body{Present: true, Data: []byte(`prompt=x`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyInvalid, Size: 8}},
		{"two values", Body{Present: true, Data: []byte(`{} {}`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyInvalid, Size: 5}},
		{"cut json", Body{Present: true, Data: []byte(`{"a":[1,`), DeclaredLength: -1},
			policy.BodyInput{Status: policy.BodyInvalid, Size: 8}},
		{"gzip bytes", Body{Present: true, Data: []byte{0x1f, 0x8b, 0x08, 0x00}, DeclaredLength: 4},
			policy.BodyInput{Status: policy.BodyInvalid, Size: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DecodeBody(tc.body, max); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeBody = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestDecodeBodyDefaultMax(t *testing.T) {
	big := []byte(`"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"`)
	if got := DecodeBody(Body{Present: true, Data: big, DeclaredLength: -1}, 0); got.Status != policy.BodyTooLarge {
		t.Errorf("status %q, want too_large with the default max", got.Status)
	}
	small := []byte(`"` + strings.Repeat("a", 1000) + `"`)
	if got := DecodeBody(Body{Present: true, Data: small, DeclaredLength: -1}, 0); got.Status != policy.BodyOK {
		t.Errorf("status %q, want ok with the default max", got.Status)
	}
}

// TestMapRequestBody: what Envoy's with_request_body sends reaches
// Request.Body, the partial-body header leaves the policy's headers.
func TestMapRequestBody(t *testing.T) {
	obj := `{"a":1}`
	tests := []struct {
		name    string
		http    *authv3.AttributeContext_HttpRequest
		status  string
		partial bool
	}{
		{"no body buffered", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x",
			Headers: map[string]string{"content-length": "7"}}, policy.BodyAbsent, false},
		{"raw_body (pack_as_bytes)", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj),
			Headers: map[string]string{"content-length": "7", HeaderPartialBody: "false"}}, policy.BodyOK, false},
		{"body string", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", Body: obj,
			Headers: map[string]string{HeaderPartialBody: "false"}}, policy.BodyOK, false},
		{"raw_body wins over body", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj), Body: "nope",
			Headers: map[string]string{HeaderPartialBody: "false"}}, policy.BodyOK, false},
		{"cut by allow_partial_message", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj),
			Headers: map[string]string{"content-length": "900", HeaderPartialBody: "true"}}, policy.BodyTruncated, true},
		{"shorter than content-length without the header", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj),
			Headers: map[string]string{"Content-Length": "900"}}, policy.BodyTruncated, false},
		{"two joined header values count as cut", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj),
			Headers: map[string]string{HeaderPartialBody: "false", "X-Envoy-Auth-Partial-Body": "false"}}, policy.BodyTruncated, true},
		{"garbage header value counts as cut", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x", RawBody: []byte(obj),
			Headers: map[string]string{HeaderPartialBody: "maybe"}}, policy.BodyTruncated, true},
		{"header says whole but body empty", &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/v2/x",
			Headers: map[string]string{HeaderPartialBody: "false"}}, policy.BodyInvalid, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := MapRequest(checkRequest(tc.http, nil), &r); err != nil {
				t.Fatal(err)
			}
			if _, ok := r.Input.Headers[HeaderPartialBody]; ok {
				t.Errorf("%s reached the policy's headers", HeaderPartialBody)
			}
			if r.Body.Partial != tc.partial {
				t.Errorf("partial %v, want %v", r.Body.Partial, tc.partial)
			}
			got := DecodeBody(r.Body, 1024)
			if got.Status != tc.status {
				t.Errorf("status %q, want %q", got.Status, tc.status)
			}
			if got.Status == policy.BodyOK && !reflect.DeepEqual(got.JSON, map[string]any{"a": 1.0}) {
				t.Errorf("JSON %#v", got.JSON)
			}
		})
	}
}

// FuzzDecodeBody: any body, flags and limit decode without panic to a
// status whose promises hold.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"messages":[{"additional_context":[{"category":"file"}]}]}`), false, int64(-1), 1024)
	f.Add([]byte(`{"a":`), true, int64(900), 16)
	f.Add([]byte{0xff, 0xfe, '{'}, false, int64(3), 0)
	f.Add([]byte(strings.Repeat("[", 20000)), false, int64(-1), 1<<20)
	f.Fuzz(func(t *testing.T, data []byte, partial bool, declared int64, max int) {
		if declared < -1 {
			declared = -1
		}
		max %= 1 << 21
		got := DecodeBody(Body{Present: true, Data: data, Partial: partial, DeclaredLength: declared}, max)
		if max <= 0 {
			max = DefaultMaxBodyBytes
		}
		if got.Size != len(data) {
			t.Fatalf("size %d, want %d", got.Size, len(data))
		}
		switch got.Status {
		case policy.BodyOK:
			if partial || len(data) > max || !json.Valid(data) {
				t.Fatalf("ok for partial=%v len=%d max=%d valid=%v", partial, len(data), max, json.Valid(data))
			}
		case policy.BodyTooLarge:
			if len(data) <= max && declared <= int64(max) {
				t.Fatalf("too_large for len=%d declared=%d max=%d", len(data), declared, max)
			}
		case policy.BodyTruncated, policy.BodyInvalid:
			if got.JSON != nil {
				t.Fatalf("%s with JSON", got.Status)
			}
		default:
			t.Fatalf("status %q", got.Status)
		}
	})
}
