package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/authz/config"
)

func TestOffWithoutEndpoint(t *testing.T) {
	p, err := New(context.Background(), config.Tracing{SampleRatio: 1}, "test")
	if err != nil || p != nil || p.Tracer() != nil || p.Shutdown(time.Second) != nil {
		t.Fatalf("no endpoint: provider %v err %v, want nil (tracing off)", p, err)
	}
}

// TestExportsOverOTLPHTTP sends a span to a loopback OTLP/HTTP receiver at
// the configured path and decodes what arrives.
func TestExportsOverOTLPHTTP(t *testing.T) {
	var (
		mu    sync.Mutex
		names []string
		paths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer srv.Close()

	p, err := New(context.Background(), config.Tracing{OTLPEndpoint: srv.URL + "/otlp/v1/traces", OTLPProtocol: "http", SampleRatio: 1}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer().Start(context.Background(), SpanCheck)
	span.End()
	if err := p.Shutdown(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != SpanCheck || paths[0] != "/otlp/v1/traces" {
		t.Fatalf("received spans %v at %v, want [%s] at /otlp/v1/traces", names, paths, SpanCheck)
	}
}

// TestSampleRatioZero: with ratio 0 a new trace is not exported.
func TestSampleRatioZero(t *testing.T) {
	p, err := New(context.Background(), config.Tracing{OTLPEndpoint: "http://127.0.0.1:1", OTLPProtocol: "grpc", SampleRatio: 0}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(time.Second)
	_, span := p.Tracer().Start(context.Background(), SpanCheck)
	defer span.End()
	if span.SpanContext().IsSampled() || span.IsRecording() {
		t.Error("sample_ratio 0 sampled a new trace")
	}
}
