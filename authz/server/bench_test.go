package server

import (
	"context"
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
