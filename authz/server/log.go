package server

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/identity"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// logDecision writes one structured decision log line. Field names are part
// of the documented log format (docs/configuration.md "Decision logs"). The token itself is
// never logged: only its jti, or its SHA-256 hash when it has no jti.
func (s *Server) logDecision(c *checkState, out *envoy.Outcome, latency time.Duration) {
	d := out.Decision
	level := slog.LevelInfo
	if c.fault != "" {
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("decision_id", out.DecisionID),
		slog.String("mode", c.mode),
		slog.String("backend", c.req.Input.Backend),
		slog.Bool("allow", d.Allow),
		slog.Bool("enforced_allow", out.Enforced()),
		slog.Int("status", httpStatus(d.Allow, d.Status)),
		slog.String("reason", string(d.Reason)),
		slog.String("route", d.Route),
		slog.String("unit_primitives", strings.Join(d.UnitPrimitives, ",")),
		slog.Bool("dry_run", out.DryRun),
		slog.Float64("latency_ms", float64(latency.Microseconds())/1000),
		slog.String("method", c.req.Input.Method),
		slog.String("host", c.req.Input.Host),
		slog.String("path", c.req.Input.Path),
	)
	if c.req.RawPath != c.req.Input.Path {
		// The path as received, when it is not what the policy judged
		// (normalised, prefix stripped or refused); bounded, and the JSON
		// handler escapes whatever bytes it holds.
		attrs = append(attrs, slog.String("raw_path", truncateLog(c.req.RawPath, maxLoggedPath)))
	}
	if out.Backend != nil {
		attrs = append(attrs, slog.String("policy_revision", out.Backend.Revision))
	}
	if c.req.Backend != "" && c.backend == nil {
		// Names come from the gateway's config (an HTTP check's name is
		// validated snake_case of at most 64 characters), so they are bounded.
		attrs = append(attrs, slog.String("requested_backend", c.req.Backend))
	}
	if c.req.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", c.req.RequestID))
	}
	// The body's status and size only: the body itself is never logged.
	if b := c.req.Input.Body; b.Status != "" && b.Status != policy.BodyAbsent {
		attrs = append(attrs, slog.String("body_status", b.Status), slog.Int("body_bytes", b.Size))
	}
	if c.span.IsValid() {
		attrs = append(attrs, slog.String("trace_id", c.span.TraceID().String()), slog.String("span_id", c.span.SpanID().String()))
	}
	if c.token.Status != "" {
		attrs = append(attrs, slog.String("token_status", string(c.token.Status)), slog.String("token_reason", string(c.token.Reason)))
		if c.token.Issuer != "" {
			attrs = append(attrs, slog.String("issuer", c.token.Issuer))
		}
		if c.token.Message != "" {
			attrs = append(attrs, slog.String("token_message", c.token.Message))
		}
		switch {
		case c.token.Claims != nil && c.token.Claims.JTI != "":
			attrs = append(attrs, slog.String("jti", c.token.Claims.JTI))
		case c.token.Hash != "":
			attrs = append(attrs, slog.String("token_sha256", c.token.Hash))
		}
	}
	if id := instanceID(c); id != "" {
		attrs = append(attrs, slog.String("instance_id", id))
	}
	if id := &c.decision.Identity; id.InstanceID.Value != "" {
		// Where each rate-limit identity came from (claim, header, default).
		attrs = append(attrs, slog.String("identity", id.String()))
	}
	if c.rateLimited != "" {
		attrs = append(attrs, slog.String("ratelimited_descriptor", c.rateLimited))
	}
	if c.fault != "" {
		attrs = append(attrs, slog.String("fault", c.fault))
	}
	s.deps.Logger.LogAttrs(context.Background(), level, "decision", attrs...)
}

// logSuppressed writes the summary of n decision lines the denial bound
// suppressed (loglimit.go); nothing when n is 0.
func (s *Server) logSuppressed(n int64) {
	if n > 0 {
		s.deps.Logger.Warn("decision log lines suppressed", "suppressed", n,
			"max_denials_per_second", s.denialLog.max)
	}
}

// maxLoggedPath bounds the raw path in a decision log line.
const maxLoggedPath = 1024

func truncateLog(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// instanceID is the GitLab instance the request is for: the verified claim
// when there is one, else the (unverified) header.
func instanceID(c *checkState) string {
	if id := c.decision.Identity.InstanceID; id.Value != "" {
		// The policy's identity step ran: claim first, the header only
		// when the token has no such claim.
		if id.Value == identity.Unknown {
			return ""
		}
		return id.Value
	}
	if cl := c.token.Claims; cl != nil {
		if cl.InstanceID != "" {
			return cl.InstanceID
		}
		if c.token.Kind == "instance" && cl.Subject != "" {
			return cl.Subject
		}
	}
	return c.req.Input.Headers["x-gitlab-instance-id"]
}

// httpStatus is the status the client sees: 200 for an allow without one.
func httpStatus(allow bool, status int) int {
	if allow && status == 0 {
		return 200
	}
	return status
}
