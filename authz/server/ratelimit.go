package server

import "github.com/ccauthz/ccauthz/authz/ratelimit"

// limitRate is the local rate limiter's step in the shared decision path,
// after the policy decided: an allowed request over its per-instance or
// per-user limit, or a 401 past the client's auth-failure limit, becomes 429
// rate_limited with Retry-After, and the descriptor that tripped goes to the
// metadata and the decision log. Faults and other denials pass untouched.
func (s *Server) limitRate(c *checkState) {
	l, b := s.deps.RateLimiter, c.backend
	if l == nil || b == nil || b.RateLimits == nil {
		return
	}
	v := l.Check(b.RateLimits, &c.decision, ratelimit.Client(c.req.Input.Headers, c.req.SourceAddress))
	if v.Limited {
		c.decision = v.Deny(c.decision)
		c.rateLimited = v.Descriptor
	}
}
