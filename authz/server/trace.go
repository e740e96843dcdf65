package server

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/trace"
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
