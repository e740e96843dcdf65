package server

import (
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/httpcheck"
)

// Reasons the server produces itself, outside the policy. Together with the
// policy's reasons they are the closed set used as metric labels.
const (
	// ReasonUnknownBackend: the request names (or its host maps to) no
	// configured backend. HTTP 403.
	ReasonUnknownBackend policy.Reason = "unknown_backend"
	// ReasonBadRequest: the CheckRequest carries no HTTP request, its path
	// is ambiguous (proto/requestpath), a header value is not UTF-8, or an
	// HTTP check request is malformed. HTTP 400 (413 for a JSON body over
	// the limit).
	ReasonBadRequest = policy.ReasonBadRequest
)

// knownReasons is every reason code a check can end with.
var knownReasons = []policy.Reason{
	policy.ReasonAllowed, policy.ReasonPublic, policy.ReasonMissingAuthorization,
	policy.ReasonInvalidAuthorization, policy.ReasonInvalidAuthenticationType,
	policy.ReasonInvalidToken, policy.ReasonKeysUnavailable, policy.ReasonHeaderMismatch,
	policy.ReasonInsufficientScope, policy.ReasonIssuerNotAllowed, policy.ReasonMissingUnitPrimitive,
	policy.ReasonUnknownUnitPrimitive, policy.ReasonUnitPrimitiveNotAllowed, policy.ReasonNoRoute,
	policy.ReasonExtraPolicyDeny, policy.ReasonRateLimited, policy.ReasonInternalError,
	policy.ReasonDeadlineExceeded, ReasonUnknownBackend, ReasonBadRequest,
	policy.ReasonOverloaded,
}

// Fault responses: the server's own failures fail closed with these fixed
// statuses and bodies, in this one place.
var faults = map[policy.Reason]struct {
	status int
	body   string
}{
	// A check that did not finish within check_timeout: the client may retry.
	policy.ReasonDeadlineExceeded: {503, "Authorization check timed out"},
	// A panic or an evaluation error: a bug or a broken policy.
	policy.ReasonInternalError: {500, "Internal authorization error"},
	// Shed at the in-flight limit before evaluation: the client may retry.
	policy.ReasonOverloaded: {503, "Authorization service overloaded"},
	ReasonUnknownBackend:    {403, "No protected backend is configured for this request"},
	ReasonBadRequest:        {400, "Not an HTTP request"},
}

func faultDecision(reason policy.Reason) policy.Decision {
	f := faults[reason]
	return policy.Decision{Status: f.status, Reason: reason, Body: map[string]any{"error": f.body}}
}

// badRequestDecision is the bad_request fault of a request the mapping or
// the canonical path refused, with their message (which names the problem
// and never quotes a header value or the path).
func badRequestDecision(err error) policy.Decision {
	return policy.Decision{Status: httpcheck.StatusOf(err), Reason: ReasonBadRequest, Body: map[string]any{"error": err.Error()}}
}
