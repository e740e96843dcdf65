package policy

import "github.com/ccauthz/ccauthz/policy/identity"

// Reason is the closed set of decision reason codes. A reason doubles as a
// metric label and a decision-log field, so the set must stay small and fixed.
type Reason string

// Reasons produced by the Rego policy.
const (
	ReasonAllowed                   Reason = "allowed"
	ReasonPublic                    Reason = "public"
	ReasonMissingAuthorization      Reason = "missing_authorization"
	ReasonInvalidAuthorization      Reason = "invalid_authorization_header"
	ReasonInvalidAuthenticationType Reason = "invalid_authentication_type"
	ReasonInvalidToken              Reason = "invalid_token"
	ReasonKeysUnavailable           Reason = "keys_unavailable"
	ReasonHeaderMismatch            Reason = "header_mismatch"
	ReasonInsufficientScope         Reason = "insufficient_scope"
	ReasonIssuerNotAllowed          Reason = "issuer_not_allowed"
	ReasonMissingUnitPrimitive      Reason = "missing_unit_primitive_header"
	ReasonUnknownUnitPrimitive      Reason = "unknown_unit_primitive"
	ReasonUnitPrimitiveNotAllowed   Reason = "unit_primitive_not_allowed"
	ReasonNoRoute                   Reason = "no_route"
	ReasonExtraPolicyDeny           Reason = "extra_policy_deny"
	// A route with body rules got no body (400), too large a body (413), or
	// one that is truncated, not JSON or not of the shape its rules read
	// (400).
	ReasonBodyMissing  Reason = "body_missing"
	ReasonBodyTooLarge Reason = "body_too_large"
	ReasonBodyInvalid  Reason = "body_invalid"
	// A header value the route refuses (403), e.g. the AI gateway's Duo Core
	// cut-off on Duo Chat.
	ReasonHeaderRefused Reason = "header_refused"
)

// Reasons produced in Go, outside the policy.
const (
	ReasonRateLimited      Reason = "rate_limited"
	ReasonInternalError    Reason = "internal_error"
	ReasonDeadlineExceeded Reason = "deadline_exceeded"
	// ReasonBadRequest: a request ccauthz refuses to decide on (400): a
	// request path or header a proxy could read differently
	// (docs/request-path.md), a header value that is not UTF-8, a backend
	// named twice differently, a malformed HTTP check.
	ReasonBadRequest Reason = "bad_request"
	// ReasonOverloaded: the server was at its in-flight limit and shed the
	// check before evaluating it (503, fail closed).
	ReasonOverloaded Reason = "overloaded"
)

// Token statuses, as the policy sees them in input.token.status.
const (
	TokenValid       = "valid"       // verified; claims present
	TokenMissing     = "missing"     // no Authorization header
	TokenMalformed   = "malformed"   // Authorization header is not `Bearer <token>`
	TokenInvalid     = "invalid"     // verification failed: the caller's fault
	TokenUnavailable = "unavailable" // keys of the issuer unavailable: an outage, not the caller's fault
)

// Input is what a check knows about one request. It is converted straight to
// a Rego value (no JSON round trip); see docs/policy.md "Decision contract".
type Input struct {
	Backend string
	Method  string
	Path    string // without the query string
	Query   string // raw query string, without '?'
	Host    string
	// Headers holds lower-case header names. The Authorization header is never
	// included: the token reaches the policy only as verified claims.
	Headers map[string]string
	// Body is the request body as the check received it (Envoy
	// with_request_body, the JSON API's "body", `policy eval --body`). Only
	// routes with body rules read it; it is never logged.
	Body  BodyInput
	Token TokenInput
}

// Body statuses, as the policy sees them in input.request.body_status.
const (
	BodyAbsent    = "absent"    // the check carried no body (nginx auth_request never sends one)
	BodyOK        = "ok"        // a complete body that decoded as JSON: JSON holds it
	BodyTooLarge  = "too_large" // larger than the configured limit
	BodyTruncated = "truncated" // the gateway sent only part of it (Envoy allow_partial_message)
	BodyInvalid   = "invalid"   // complete, but not JSON
)

// BodyInput is the request body of a check. The protocol mappings fill it;
// the policy decides what a route needs of it.
type BodyInput struct {
	Status string // one of the Body* statuses; "" means BodyAbsent
	// JSON is the decoded body (map[string]any, []any, string, float64, bool
	// or nil) when Status is BodyOK.
	JSON any
	// Size is the body's size in bytes as received (0 when absent).
	Size int
}

// status is the body status with "" read as BodyAbsent.
func (b BodyInput) status() string {
	if b.Status == "" {
		return BodyAbsent
	}
	return b.Status
}

// TokenInput is the outcome of token verification as the policy sees it.
type TokenInput struct {
	Status string // one of the Token* statuses
	Reason string // the token package's reason code when Status is not valid
	Issuer string // configured issuer name that verified the token
	Kind   string // "instance" or "user": decides the sub header binding
	// Claims are the verified claims as decoded JSON values (string, float64,
	// bool, []any, map[string]any).
	Claims map[string]any
	// Hash is the hex SHA-256 of the raw token: a cache key and the only form of
	// the token that may be logged. It is not given to Rego.
	Hash string
	// GrantDigest digests the claims without the per-token ones (jti, iat,
	// nbf, exp; see token.Claims.GrantDigest). When the policy never reads
	// those, it keys decisions on this instead of Hash, so a fresh token for
	// the same grant (GitLab.com mints one per request) reuses the decision.
	// When empty, ClaimKeys' GrantDigest() (if it has one) is asked, only
	// when the policy keys on it.
	GrantDigest string
	// ClaimKeys, when set, computes token.ClaimSetKey of Claims and may
	// remember it per token (the server passes the verified *token.Claims).
	// The decision cache keys a token on the values of the claims the
	// policy reads; without ClaimKeys it computes them from Claims.
	ClaimKeys interface {
		ClaimSetKey(names []string) (string, bool)
	}
}

// Decision is the policy's answer: one object with fixed keys (the decision
// contract documented in docs/policy.md).
type Decision struct {
	Allow  bool           `json:"allow"`
	Status int            `json:"status"`
	Body   map[string]any `json:"body"`
	Reason Reason         `json:"reason"`
	// Route is the manifest route id that matched, "" when none did.
	Route          string   `json:"route"`
	UnitPrimitives []string `json:"unit_primitives"`
	// Headers are added to the upstream request on allow.
	Headers         map[string]string `json:"headers"`
	HeadersToRemove []string          `json:"headers_to_remove"`
	// ResponseHeaders are sent to the client on deny (e.g. WWW-Authenticate).
	ResponseHeaders map[string]string `json:"response_headers"`
	RateLimit       RateLimit         `json:"rate_limit"`
	// DryRun is true when the matched route is in dry-run: the caller must
	// allow the request and report the decision as "would deny".
	DryRun bool `json:"dry_run"`
	// Identity is the identity step's outcome for this request, with where
	// each value came from (for the decision log). Decide fills it, and the
	// identity entries of RateLimit.Entries from it, after the decision
	// cache; it is not part of the policy's output.
	Identity identity.Identity `json:"-"`
}

// RateLimit carries the rate-limit descriptor entries (string leaves only, so
// Envoy's metadata action can read them) and an optional limit override.
type RateLimit struct {
	Entries map[string]string `json:"entries"`
	// Limit is shared between decisions served from the cache: never modify
	// it through a decision, replace it.
	Limit *LimitOverride `json:"limit,omitempty"`
}

// LimitOverride is the {requests_per_unit, unit} struct Envoy's
// RateLimit.limit override reads from dynamic metadata.
type LimitOverride struct {
	RequestsPerUnit int    `json:"requests_per_unit"`
	Unit            string `json:"unit"`
}
