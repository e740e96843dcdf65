package benchmarks

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// codeSuggestionsBody is a /v4/code/suggestions body as the GitLab
// Language Server sends it: one code_editor_completion component whose file
// content above and below the cursor totals size bytes.
func codeSuggestionsBody(b *testing.B, size int) []byte {
	b.Helper()
	line := "    result = compute(values[index], weights, bias)  # a typical line of code\n"
	above := strings.Repeat(line, size*3/4/len(line))
	below := strings.Repeat(line, size/4/len(line))
	body, err := json.Marshal(map[string]any{
		"prompt_components": []any{map[string]any{
			"type": "code_editor_completion",
			"payload": map[string]any{
				"file_name": "src/model/train.py", "language_identifier": "python",
				"content_above_cursor": above, "content_below_cursor": below, "stream": false,
			},
		}},
		"model_provider": "", "model_name": "", "choices_count": 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchDecode(b *testing.B, size int) {
	data := codeSuggestionsBody(b, size)
	body := envoy.Body{Present: true, Data: data, DeclaredLength: int64(len(data))}
	if got := envoy.DecodeBody(body, envoy.DefaultMaxBodyBytes); got.Status != policy.BodyOK {
		b.Fatalf("status %q", got.Status)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		envoy.DecodeBody(body, envoy.DefaultMaxBodyBytes)
	}
}

// BenchmarkDecodeBody4K, 32K and 256K: the one decode a body route pays per
// check (JSON into Go values), for small, typical and large code
// suggestions requests.
func BenchmarkDecodeBody4K(b *testing.B)   { benchDecode(b, 4<<10) }
func BenchmarkDecodeBody32K(b *testing.B)  { benchDecode(b, 32<<10) }
func BenchmarkDecodeBody256K(b *testing.B) { benchDecode(b, 256<<10) }

// BenchmarkDecodeBodyTooLarge: an over-limit body costs no decoding.
func BenchmarkDecodeBodyTooLarge(b *testing.B) {
	data := codeSuggestionsBody(b, 2<<20)
	body := envoy.Body{Present: true, Data: data, DeclaredLength: -1}
	b.ReportAllocs()
	for b.Loop() {
		if envoy.DecodeBody(body, envoy.DefaultMaxBodyBytes).Status != policy.BodyTooLarge {
			b.Fatal("not too_large")
		}
	}
}

// BenchmarkCheckCachedTokenWithBody is BenchmarkCheckCachedToken on
// /v4/code/suggestions with a 32 KiB body sent by with_request_body: the
// whole in-process Check including the body decode.
func BenchmarkCheckCachedTokenWithBody(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://customers.gitlab.com", benchInstance, "complete_code", "duo_chat")
	data := codeSuggestionsBody(b, 32<<10)
	req := func() {
		r := checkRequest("/v4/code/suggestions", tok, benchInstance)
		r.Attributes.Request.Http.RawBody = data
		r.Attributes.Request.Http.Headers["x-envoy-auth-partial-body"] = "false"
		runCheck(b, cb, r, codes.OK)
	}
	req()
	b.ReportAllocs()
	for b.Loop() {
		req()
	}
}
