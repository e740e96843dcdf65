package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/trace"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// Check implements envoy.service.auth.v3.Authorization/Check. It never
// returns an error: every outcome, including internal faults, is an explicit
// CheckResponse, so Envoy's failure_mode_allow never comes into play and
// faults fail closed. The decision itself is the shared pipeline in
// decideRequest/settle/account; Check only maps the CheckRequest in and the
// outcome out (the HTTP checks in http.go do the same for their protocols).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	reserveStack()
	start := s.deps.Now()
	c := &checkState{mode: modeGRPC}
	// Last line of defence: a panic outside decide (mapping, response
	// building, metrics, logging) must not crash the process or reach gRPC
	// as an error Envoy might be configured to fail open on.
	defer func() {
		if p := recover(); p != nil {
			resp, err = s.responder.Response(s.recovered(p)), nil
		}
	}()
	s.checkMapped(ctx, c, envoy.MapRequest(req, &c.req))
	resp = s.responder.Response(&c.out)
	s.account(c, start)
	return resp, nil
}

// checkMapped decides and settles a request already mapped into c.req
// (Check and the wire path, wire.go, share it; they differ only in how the
// request is decoded and the outcome put on the wire); mapErr is the
// mapping's refusal (a 400), nil when it mapped.
func (s *Server) checkMapped(ctx context.Context, c *checkState, mapErr error) {
	if mapErr != nil {
		c.decision = badRequestDecision(mapErr)
	} else if err := s.canonicalPath(c); err != nil {
		c.decision = badRequestDecision(err)
	} else {
		s.decideAdmitted(ctx, c)
	}
	s.settle(c)
}

// canonicalPath puts the request's path in canonical form (every protocol
// calls it between mapping and deciding); a refused path is cleared so
// nothing downstream mistakes the raw one for what was judged.
func (s *Server) canonicalPath(c *checkState) error {
	if err := c.req.CanonicalPath(*s.opts.RequestPath); err != nil {
		c.req.Input.Path = ""
		return err
	}
	return nil
}

// recovered counts and logs a panic outside the decision and returns the
// internal_error outcome that answers it.
func (s *Server) recovered(p any) *envoy.Outcome {
	s.metrics.panics.Inc()
	s.deps.Logger.Error("check panicked outside the decision; denied", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	d := faultDecision(policy.ReasonInternalError)
	return &envoy.Outcome{Decision: &d, DecisionID: s.nextDecisionID()}
}

// decideRequest runs the decision path shared by every protocol on a mapped
// request: trace context, backend choice, the check deadline, token
// verification and the policy. The result is in c.decision.
func (s *Server) decideRequest(ctx context.Context, c *checkState) {
	if s.deps.Tracer != nil {
		ctx = s.startCheckSpan(ctx, c)
	} else {
		ctx, c.span = withTraceParent(ctx, c.req.TraceParent)
	}
	s.decideOnly(ctx, c)
	s.limitRate(c)
}

// decideOnly is the side-effect-free core of decideRequest (Explain calls
// it directly): backend choice, the check deadline, token verification and
// the policy, without tracing, rate limiting, metrics or logs.
func (s *Server) decideOnly(ctx context.Context, c *checkState) {
	snap := s.snap.Load()
	b, ok := snap.choose(c.req.Backend, c.req.Input.Host)
	if !ok {
		c.decision = faultDecision(ReasonUnknownBackend)
		return
	}
	c.backend = b
	c.req.Input.Backend = b.Name

	// Envoy sends its own (usually tighter) deadline with each call; only
	// add ours when it is earlier, which saves a timer per check.
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.opts.CheckTimeout {
		d := newCheckDeadline(ctx, time.Now().Add(s.opts.CheckTimeout))
		defer d.stop()
		ctx = d
	}
	// The decision runs inline: handing it to another goroutine to race the
	// deadline costs two scheduler hops per check, which on a busy machine
	// costs more than the whole decision. The verifier and the policy honour
	// ctx (their contracts), and a result that arrives after the deadline is
	// discarded, so a slow dependency still fails closed.
	s.decide(ctx, c)
}

// checkState is one check in progress.
type checkState struct {
	mode     string // protocol the check arrived by (decision log field)
	req      envoy.Request
	out      envoy.Outcome
	backend  *Backend
	span     trace.SpanContext
	otel     trace.Span // the check's span; nil when tracing is off
	token    token.Result
	decision policy.Decision
	fault    string // internal detail for the log, never sent to the client
	// rateLimited is the descriptor that tripped the local rate limiter.
	rateLimited string
	// shed: answered without evaluation (overload.go); logged in summary.
	shed bool
}

// decide verifies and evaluates; a panic in either becomes internal_error.
func (s *Server) decide(ctx context.Context, c *checkState) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.panics.Inc()
			c.decision = faultDecision(policy.ReasonInternalError)
			c.fault = fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	if c.otel != nil {
		s.tracedVerify(ctx, c)
	} else {
		c.token = s.deps.Verifier.Verify(ctx, c.req.Authorization, c.backend.Audience)
	}
	if c.token.Status == token.StatusValid && len(c.backend.Issuers) > 0 && !slices.Contains(c.backend.Issuers, c.token.Issuer) {
		c.token = token.Result{Status: token.StatusInvalid, Reason: token.ReasonUnknownIssuer, Issuer: c.token.Issuer,
			Kind: c.token.Kind, Hash: c.token.Hash, Message: "issuer " + c.token.Issuer + " is not accepted by backend " + c.backend.Name}
	}
	c.req.Input.Token = tokenInput(&c.token)
	c.req.Input.Body = s.body(c)
	if ctx.Err() != nil {
		c.decision = faultDecision(policy.ReasonDeadlineExceeded)
		c.fault = "check deadline exceeded during token verification"
		return
	}
	var (
		d   policy.Decision
		err error
	)
	if c.otel != nil {
		d, err = tracedDecide(ctx, s.deps.Tracer, c)
	} else {
		d, err = c.backend.Decider.Decide(ctx, &c.req.Input)
	}
	switch {
	case ctx.Err() != nil:
		c.decision = faultDecision(policy.ReasonDeadlineExceeded)
		c.fault = "check deadline exceeded"
	case err != nil:
		c.decision = faultDecision(policy.ReasonInternalError)
		c.fault = err.Error()
	default:
		c.decision = d
	}
}

// body decodes the check's request body for the policy, once, for every
// protocol alike, and only for a verified token: every other token status
// is denied (401, 503) before any body rule is read, so decoding a body an
// unauthenticated client sent would only be work it can make ccauthz do.
// Such a check's policy input says absent.
func (s *Server) body(c *checkState) policy.BodyInput {
	if c.token.Status != token.StatusValid || !readsBody(c.backend.Decider) {
		return policy.BodyInput{Status: policy.BodyAbsent}
	}
	return envoy.DecodeBody(c.req.Body, s.opts.MaxRequestBodyBytes)
}

// readsBody reports whether a decider can depend on the request body; a
// decider that does not say (a test fake) is assumed to.
func readsBody(d Decider) bool {
	if br, ok := d.(interface{ ReadsBody() bool }); ok {
		return br.ReadsBody()
	}
	return true
}

// tokenInput is the verification result as the policy sees it.
func tokenInput(r *token.Result) policy.TokenInput {
	in := policy.TokenInput{
		Status: string(r.Status), Reason: string(r.Reason),
		Issuer: r.Issuer, Kind: string(r.Kind), Hash: r.Hash,
	}
	if r.Claims != nil {
		in.Claims = r.Claims.Raw
		in.ClaimKeys = r.Claims // also the grant digest, computed when the policy keys on it
	}
	return in
}

// settle turns the decision into the outcome every protocol renders:
// decision id, backend metadata and dry-run.
func (s *Server) settle(c *checkState) {
	c.out = envoy.Outcome{Decision: &c.decision, DecisionID: s.nextDecisionID(), RateLimited: c.rateLimited, Path: c.req.Input.Path}
	if b := c.backend; b != nil {
		c.out.Backend = b.meta
		c.out.DryRun = s.dryRun(c)
	}
}

// dryRun reports whether c's denial is only reported. Dry-run never hides
// a fault: deadline and internal errors are enforced even in dry-run, only
// policy denials are relaxed.
func (s *Server) dryRun(c *checkState) bool {
	_, isFault := faults[c.decision.Reason]
	return (s.opts.DryRun || c.backend.DryRun || c.decision.DryRun) && !isFault
}

// account counts and logs a settled check.
func (s *Server) account(c *checkState, start time.Time) {
	out := &c.out
	counters := s.unknownCounters
	if c.backend != nil {
		counters = c.backend.counters
	}
	end := s.deps.Now()
	latency := end.Sub(start)

	decision := decisionDeny
	if out.Enforced() {
		decision = decisionAllow
	}
	if ctr, ok := counters.checks[counterKey{c.mode, decision, c.decision.Reason}]; ok {
		ctr.Inc()
	} else {
		s.metrics.checks.WithLabelValues(counterLabel(c.backend), c.mode, decision, string(c.decision.Reason)).Inc()
	}
	wouldDeny := out.DryRun && !c.decision.Allow
	if wouldDeny {
		if ctr, ok := counters.wouldDeny[c.decision.Reason]; ok {
			ctr.Inc()
		} else {
			s.metrics.wouldDeny.WithLabelValues(counterLabel(c.backend), string(c.decision.Reason)).Inc()
		}
	}
	counters.latency.Observe(latency.Seconds())
	if c.otel != nil {
		endCheckSpan(c, decision)
	}
	switch {
	case c.shed:
		s.logShed(c)
	case !c.decision.Allow:
		ok, suppressed := s.denialLog.admit(end)
		s.logSuppressed(suppressed)
		if ok {
			s.logDecision(c, out, latency)
		}
	case s.sampleAllow():
		s.logDecision(c, out, latency)
	}
}

func counterLabel(b *Backend) string {
	if b == nil {
		return unknownBackendLabel
	}
	return b.Name
}
