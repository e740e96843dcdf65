package tracing

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ccauthz/ccauthz/authz/config"
)

// Span names. Attribute values never carry a token, a token hash or a
// header value: only outcomes, names and counts.
const (
	SpanCheck    = "ccauthz.check"
	SpanVerify   = "ccauthz.token.verify"
	SpanEvaluate = "ccauthz.policy.evaluate"
	SpanKeyFetch = "ccauthz.jwks.fetch"
)

// Attribute keys.
const (
	AttrMode       = attribute.Key("ccauthz.mode")
	AttrBackend    = attribute.Key("ccauthz.backend")
	AttrDecision   = attribute.Key("ccauthz.decision")
	AttrReason     = attribute.Key("ccauthz.reason")
	AttrDecisionID = attribute.Key("ccauthz.decision_id")
	AttrStatus     = attribute.Key("http.response.status_code")
	AttrTokenState = attribute.Key("ccauthz.token.status")
	AttrTokenWhy   = attribute.Key("ccauthz.token.reason")
	AttrIssuer     = attribute.Key("ccauthz.issuer")
	AttrTokenKind  = attribute.Key("ccauthz.token.kind")
	AttrCache      = attribute.Key("ccauthz.decision_cache")
	AttrRevision   = attribute.Key("ccauthz.policy.revision")
	AttrKeySource  = attribute.Key("ccauthz.jwks.source")
)

// Provider is a configured tracer provider; Shutdown flushes it.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// New builds the provider for cfg, or returns nil when tracing is off (no
// otlp_endpoint). The exporter connects lazily: an unreachable collector
// drops spans (counted by the SDK's own logging), it never fails a check.
func New(ctx context.Context, cfg config.Tracing, version string) (*Provider, error) {
	if cfg.OTLPEndpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(cfg.OTLPEndpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracing: otlp_endpoint %q is not a URL", cfg.OTLPEndpoint)
	}
	insecure := u.Scheme == "http"
	var exp *otlptrace.Exporter
	switch cfg.OTLPProtocol {
	case "", "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host)}
		if insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	case "http":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host)}
		if p := u.EscapedPath(); p != "" && p != "/" {
			opts = append(opts, otlptracehttp.WithURLPath(p))
		}
		if insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("tracing: otlp_protocol %q is not grpc or http", cfg.OTLPProtocol)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "ccauthz"),
		attribute.String("service.version", version),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Provider{tp: tp}, nil
}

// Tracer returns ccauthz's tracer; nil for a nil provider (tracing off).
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tp.Tracer("github.com/ccauthz/ccauthz")
}

// Shutdown flushes queued spans and stops the exporter, waiting at most
// timeout. A nil provider does nothing.
func (p *Provider) Shutdown(timeout time.Duration) error {
	if p == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
