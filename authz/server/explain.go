package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// Explained is one decision Explain made, with what led to it: enough for
// authz/api to build the trace. It carries the token's verification result
// (claims included); callers show only its hash prefix and jti.
type Explained struct {
	// Request is the mapped request; Request.Input is the policy input
	// (backend, canonical path, token, decoded body) the policy judged.
	Request envoy.Request
	// Backend is the backend that decided, nil when none matched.
	Backend *Backend
	// Token is the verification result; zero when verification was not
	// reached.
	Token token.Result
	// Decision is the decision Check would have answered.
	Decision policy.Decision
	// DryRun reports a denial that would only be reported, not enforced.
	DryRun bool
	// RequestErr is the mapping or canonical-path error that refused the
	// request before a backend was chosen, nil otherwise.
	RequestErr error
	// Verified reports that token verification ran.
	Verified bool
}

// Explain decides req on the same path as Check (mapping, canonical path,
// backend choice, verification, policy) but without admission control,
// tracing, rate limiting, metrics or decision logs: it changes nothing and
// a request explained is not a request counted. A panic fails closed as
// internal_error.
func (s *Server) Explain(ctx context.Context, req *authv3.CheckRequest) (e *Explained) {
	c := &checkState{mode: "explain"}
	e = &Explained{}
	defer func() {
		if p := recover(); p != nil {
			s.deps.Logger.Error("explain panicked; denied", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			*e = Explained{Decision: faultDecision(policy.ReasonInternalError), RequestErr: errors.New("internal error while explaining; Check fails closed the same way")}
		}
	}()
	if err := envoy.MapRequest(req, &c.req); err != nil {
		c.decision = badRequestDecision(err)
		e.RequestErr = err
	} else if err := s.canonicalPath(c); err != nil {
		c.decision = badRequestDecision(err)
		e.RequestErr = err
	} else {
		s.decideOnly(ctx, c)
		e.Verified = c.backend != nil && c.token.Status != ""
	}
	e.Request, e.Backend, e.Token, e.Decision = c.req, c.backend, c.token, c.decision
	if c.backend != nil {
		e.DryRun = s.dryRun(c)
	}
	return e
}
