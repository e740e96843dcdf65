package assembly

import (
	"context"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ccauthz/ccauthz/authz/config"
)

// otlpReceiver is an in-process OTLP/gRPC trace collector on loopback that
// keeps every span it is sent.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[string]string // resource attributes
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String(), attrs: map[string]string{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			r.attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) received() []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			m[kv.GetKey()] = v.GetStringValue()
		default:
			m[kv.GetKey()] = strings.TrimPrefix(v.String(), "int_value:")
		}
	}
	return m
}

// TestTracesReachOTLPReceiver runs real checks through the assembled server
// with tracing on and checks, at an in-process OTLP receiver, the span tree
// (check → token verification and policy evaluation, the key fetch), the
// parent taken from the gRPC metadata or else the request's traceparent,
// the attributes, and that no attribute carries the token.
func TestTracesReachOTLPReceiver(t *testing.T) {
	rcv := startReceiver(t)
	a, auth := assembleWith(t, func(c *config.Config) {
		c.Tracing = config.Tracing{OTLPEndpoint: "http://" + rcv.addr, OTLPProtocol: "grpc", SampleRatio: 1}
	})

	// Envoy's span, in the gRPC metadata, parents the first two checks
	// (a decision-cache miss, then a hit).
	const envoyTrace, envoySpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	md := metadata.Pairs("traceparent", "00-"+envoyTrace+"-"+envoySpan+"-01")
	ctx := metadata.NewIncomingContext(context.Background(), md)
	for range 2 {
		if resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth)); resp.GetOkResponse() == nil {
			t.Fatalf("want allow: %v", resp)
		}
	}
	// Without metadata, the request's own traceparent header is the parent.
	const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req := checkRequest("/v2/code/generations", auth)
	req.Attributes.Request.Http.Headers["traceparent"] = "00-" + clientTrace + "-" + clientSpan + "-01"
	if resp, _ := a.Server.Check(context.Background(), req); resp.GetDeniedResponse() == nil {
		t.Fatalf("want deny: %v", resp)
	}

	a.Close() // flushes the batch processor
	spans := rcv.received()
	if rcv.attrs["service.name"] != "ccauthz" {
		t.Errorf("resource attributes %v, want service.name ccauthz", rcv.attrs)
	}

	var checks []*tracepb.Span
	var fetches int
	for _, s := range spans {
		switch s.GetName() {
		case "ccauthz.check":
			checks = append(checks, s)
		case "ccauthz.jwks.fetch":
			fetches++
			if at := attrMap(s.GetAttributes()); at["ccauthz.issuer"] == "" || at["ccauthz.jwks.source"] != "file" {
				t.Errorf("key fetch attributes %v", at)
			}
		}
		// No attribute may carry the token or any part of it.
		tok := strings.TrimPrefix(auth, "Bearer ")
		for k, v := range attrMap(s.GetAttributes()) {
			for _, part := range append(strings.Split(tok, "."), tok) {
				if len(part) >= 16 && strings.Contains(v, part) {
					t.Errorf("span %s attribute %s carries the token", s.GetName(), k)
				}
			}
		}
	}
	if fetches == 0 {
		t.Error("no ccauthz.jwks.fetch span")
	}
	if len(checks) != 3 {
		t.Fatalf("%d check spans, want 3; got %d spans in all", len(checks), len(spans))
	}

	cacheSeen := map[string]int{}
	for i, c := range checks {
		if c.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("check span %d kind %v, want SERVER", i, c.GetKind())
		}
		wantTrace, wantParent := envoyTrace, envoySpan
		at := attrMap(c.GetAttributes())
		if at["ccauthz.decision"] == "deny" {
			wantTrace, wantParent = clientTrace, clientSpan
		}
		if got := hex.EncodeToString(c.GetTraceId()); got != wantTrace {
			t.Errorf("check span %d trace %s, want %s", i, got, wantTrace)
		}
		if got := hex.EncodeToString(c.GetParentSpanId()); got != wantParent {
			t.Errorf("check span %d parent %s, want %s", i, got, wantParent)
		}
		if at["ccauthz.mode"] != "grpc" || at["ccauthz.backend"] != "ai_gateway" || at["ccauthz.reason"] == "" || at["ccauthz.decision_id"] == "" {
			t.Errorf("check span %d attributes %v", i, at)
		}
		// Its children: one verification, one evaluation.
		kids := map[string]*tracepb.Span{}
		for _, s := range spans {
			if hex.EncodeToString(s.GetParentSpanId()) == hex.EncodeToString(c.GetSpanId()) {
				kids[s.GetName()] = s
				if hex.EncodeToString(s.GetTraceId()) != wantTrace {
					t.Errorf("child %s is in another trace", s.GetName())
				}
			}
		}
		v, e := kids["ccauthz.token.verify"], kids["ccauthz.policy.evaluate"]
		if v == nil || e == nil {
			t.Fatalf("check span %d children %v, want ccauthz.token.verify and ccauthz.policy.evaluate", i, kids)
		}
		if va := attrMap(v.GetAttributes()); va["ccauthz.token.status"] != "valid" || va["ccauthz.issuer"] == "" {
			t.Errorf("verify attributes %v", va)
		}
		ea := attrMap(e.GetAttributes())
		cacheSeen[ea["ccauthz.decision_cache"]]++
		if ea["ccauthz.policy.revision"] == "" {
			t.Errorf("evaluate attributes %v lack the policy revision", ea)
		}
		if c.GetEndTimeUnixNano() < e.GetEndTimeUnixNano() || c.GetStartTimeUnixNano() > v.GetStartTimeUnixNano() {
			t.Errorf("check span %d does not enclose its children", i)
		}
	}
	if cacheSeen["hit"] != 1 || cacheSeen["miss"] != 2 {
		t.Errorf("decision cache outcomes %v, want 2 misses (completions, generations) and 1 hit", cacheSeen)
	}
}

// BenchmarkCheckCachedTokenTraced is BenchmarkCheckCachedToken with tracing
// on (every check sampled, exported to a loopback receiver): the cost of
// tracing. BenchmarkCheckCachedToken itself has tracing off.
func BenchmarkCheckCachedTokenTraced(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, &otlpReceiver{attrs: map[string]string{}})
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	a, auth := assembleWith(b, func(c *config.Config) {
		c.Tracing = config.Tracing{OTLPEndpoint: "http://" + lis.Addr().String(), OTLPProtocol: "grpc", SampleRatio: 1}
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth))
		if resp.GetOkResponse() == nil {
			b.Fatal("not allowed")
		}
	}
}
