package server

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/ccauthz/ccauthz/authz/tracing"
	"github.com/ccauthz/ccauthz/policy"
)

// withTraceParent parses a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>") and, when valid,
// returns a context carrying it as the remote OpenTelemetry span context, so
// the verifier, the policy and any outgoing call (a JWKS fetch) continue the
// caller's trace. Invalid values are ignored, as the W3C spec requires.
func withTraceParent(ctx context.Context, tp string) (context.Context, trace.SpanContext) {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ctx, trace.SpanContext{}
	}
	version := tp[:2]
	if version == "ff" || (version == "00" && len(tp) != 55) || !isLowerHex(version) {
		return ctx, trace.SpanContext{}
	}
	tid, err := trace.TraceIDFromHex(tp[3:35])
	if err != nil {
		return ctx, trace.SpanContext{}
	}
	sid, err := trace.SpanIDFromHex(tp[36:52])
	if err != nil {
		return ctx, trace.SpanContext{}
	}
	flags := tp[53:55]
	if !isLowerHex(flags) {
		return ctx, trace.SpanContext{}
	}
	var f trace.TraceFlags
	if flags[1] == '1' || flags[1] == '3' || flags[1] == '5' || flags[1] == '7' ||
		flags[1] == '9' || flags[1] == 'b' || flags[1] == 'd' || flags[1] == 'f' {
		f = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: f, Remote: true})
	if !sc.IsValid() {
		return ctx, trace.SpanContext{}
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc), sc
}

func isLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// startCheckSpan starts the check's server span. Its parent is the trace
// context in the gRPC metadata (Envoy propagates its own ext_authz span
// there), else the request's traceparent header. The span is ended by
// account, after the response is built.
func (s *Server) startCheckSpan(ctx context.Context, c *checkState) context.Context {
	parent := trace.SpanContext{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		parent = trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, mdCarrier(md)))
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	} else {
		ctx, _ = withTraceParent(ctx, c.req.TraceParent)
	}
	ctx, c.otel = s.deps.Tracer.Start(ctx, tracing.SpanCheck, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.AttrMode.String(c.mode)))
	c.span = c.otel.SpanContext()
	return ctx
}

// endCheckSpan records the outcome on the check's span and ends it.
func endCheckSpan(c *checkState, decision string) {
	attrs := []attribute.KeyValue{
		tracing.AttrDecision.String(decision),
		tracing.AttrReason.String(string(c.decision.Reason)),
		tracing.AttrDecisionID.String(c.out.DecisionID),
		tracing.AttrStatus.Int(c.decision.Status),
	}
	if c.backend != nil {
		attrs = append(attrs, tracing.AttrBackend.String(c.backend.Name))
	}
	c.otel.SetAttributes(attrs...)
	if c.fault != "" {
		c.otel.SetStatus(codes.Error, string(c.decision.Reason))
	}
	c.otel.End()
}

// tracedVerify is token verification inside its span. The attributes are
// outcomes only: never the token, its hash or a claim value.
func (s *Server) tracedVerify(ctx context.Context, c *checkState) {
	ctx, span := s.deps.Tracer.Start(ctx, tracing.SpanVerify)
	c.token = s.deps.Verifier.Verify(ctx, c.req.Authorization, c.backend.Audience)
	span.SetAttributes(
		tracing.AttrTokenState.String(string(c.token.Status)),
		tracing.AttrTokenWhy.String(string(c.token.Reason)),
		tracing.AttrIssuer.String(c.token.Issuer),
		tracing.AttrTokenKind.String(string(c.token.Kind)),
	)
	span.End()
}

// cachedDecider is a Decider that reports the decision cache's part
// (*policy.Policy).
type cachedDecider interface {
	DecideCached(ctx context.Context, in *policy.Input) (policy.Decision, policy.CacheOutcome, error)
}

// tracedDecide is policy evaluation inside its span, with the decision
// cache's outcome (hit, miss, uncacheable, off) as an attribute.
func tracedDecide(ctx context.Context, tr trace.Tracer, c *checkState) (policy.Decision, error) {
	ctx, span := tr.Start(ctx, tracing.SpanEvaluate)
	defer span.End()
	var (
		d       policy.Decision
		outcome policy.CacheOutcome = "unknown"
		err     error
	)
	if cd, ok := c.backend.Decider.(cachedDecider); ok {
		d, outcome, err = cd.DecideCached(ctx, &c.req.Input)
	} else {
		d, err = c.backend.Decider.Decide(ctx, &c.req.Input)
	}
	span.SetAttributes(tracing.AttrCache.String(string(outcome)), tracing.AttrRevision.String(c.backend.Decider.Revision()))
	if err != nil {
		span.SetStatus(codes.Error, "policy evaluation failed")
	}
	return d, err
}

// mdCarrier reads W3C trace context from gRPC metadata.
type mdCarrier metadata.MD

func (m mdCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (m mdCarrier) Set(key, value string) { metadata.MD(m).Set(key, value) }

func (m mdCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
