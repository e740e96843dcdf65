package server

import (
	"context"
	"net/http/httptest"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// BenchmarkCheck measures the server's own share of a check (mapping,
// backend choice, goroutine + deadline, response, metrics) with fakes that
// cost next to nothing, for an allow with allow-logging off. It includes
// building the CheckRequest (BenchmarkRequestOnly measures that part alone).
func BenchmarkCheck(b *testing.B) {
	h := newHarness(&testing.T{}, Options{}, aiGateway())
	h.deciders["ai_gateway"].quiet, h.ver.quiet = true, true
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-inst1", nil, "cloud.gitlab.com"))
		if resp.GetOkResponse() == nil {
			b.Fatal("not allowed")
		}
	}
}

var requestSink *authv3.CheckRequest

// BenchmarkRequestOnly is the cost of building the benchmark's CheckRequest.
func BenchmarkRequestOnly(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		requestSink = request("/allowed", "Bearer good-inst1", nil, "cloud.gitlab.com")
	}
}

// BenchmarkHTTPCheck is BenchmarkCheck over the nginx auth_request endpoint,
// in process (handler, no socket): mapping the HTTP request, the shared
// pipeline and writing the answer. The request is built once and reused.
func BenchmarkHTTPCheck(b *testing.B) {
	h := newHarness(&testing.T{}, Options{}, aiGateway())
	h.deciders["ai_gateway"].quiet, h.ver.quiet = true, true
	hd := h.srv.HTTPHandler()
	r := httptest.NewRequest("GET", "/v1/auth/nginx", nil)
	r.Header.Set("X-Original-Method", "POST")
	r.Header.Set("X-Original-Uri", "/allowed")
	r.Header.Set("X-Forwarded-Host", "cloud.gitlab.com")
	r.Header.Set("Authorization", "Bearer good-inst1")
	r.Header.Set("X-Gitlab-Realm", "saas")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		hd.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal("not allowed")
		}
	}
}
