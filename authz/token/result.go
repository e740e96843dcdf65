package token

import (
	"sync/atomic"
	"time"
)

// Status is the outcome class of a verification. The values are the strings
// the policy sees in input.token.status.
type Status string

// Verification outcome classes.
const (
	StatusValid       Status = "valid"       // verified; Claims set
	StatusMissing     Status = "missing"     // no Authorization header
	StatusMalformed   Status = "malformed"   // Authorization is not `Bearer <token>`
	StatusInvalid     Status = "invalid"     // the token failed verification: the caller's fault
	StatusUnavailable Status = "unavailable" // the issuer's keys are unavailable: an outage
)

// Reason is the closed set of verification reason codes (metric label and
// decision-log field). The token package may add codes; it must not rename them.
type Reason string

// Verification reason codes.
const (
	ReasonOK                  Reason = "ok"
	ReasonMissing             Reason = "missing_authorization"
	ReasonMalformedHeader     Reason = "invalid_authorization_header"
	ReasonTooLarge            Reason = "token_too_large"
	ReasonMalformed           Reason = "malformed_token"
	ReasonUnknownIssuer       Reason = "unknown_issuer"
	ReasonUnknownKey          Reason = "unknown_key"
	ReasonKeysUnavailable     Reason = "keys_unavailable"
	ReasonDisallowedAlgorithm Reason = "disallowed_algorithm"
	ReasonBadSignature        Reason = "bad_signature"
	ReasonExpired             Reason = "expired"
	ReasonNotYetValid         Reason = "not_yet_valid"
	// ReasonIssuedInFuture is no longer produced (iat is only type-checked,
	// as at the AI gateway); the code stays reserved so dashboards keep
	// their label set.
	ReasonIssuedInFuture  Reason = "issued_in_future"
	ReasonMissingExpiry   Reason = "missing_exp"
	ReasonMissingAudience Reason = "missing_aud"
	ReasonBadAudience     Reason = "bad_audience"
	ReasonBadClaims       Reason = "bad_claims"
)

// Kind decides which header the `sub` claim binds to: an instance token's sub
// is the instance id, a user token's sub is the global user id.
type Kind string

// Token kinds.
const (
	KindInstance Kind = "instance"
	KindUser     Kind = "user"
)

// Claims are the verified claims of a token.
type Claims struct {
	Issuer     string
	Subject    string
	Audience   []string
	Expiry     time.Time
	NotBefore  time.Time // zero when absent
	IssuedAt   time.Time // zero when absent
	JTI        string
	Realm      string // gitlab_realm
	InstanceID string // gitlab_instance_id
	Scopes     []string
	// Raw is the whole decoded payload (JSON types), for the policy input.
	Raw map[string]any
	// keyMemo is the last ClaimSetKey computed for these claims.
	keyMemo atomic.Pointer[claimKeyMemo]
	// digest is GrantDigest, computed on first use.
	digest atomic.Pointer[string]
}

// GrantDigest is the hex SHA-256 of the payload without the per-token
// claims (PerTokenClaims): two tokens minted for the same grant share it, so
// a policy that never reads those claims may key decisions on it instead of
// on the token hash. It is computed on first use (a policy that keys on the
// claims it reads never asks) and remembered; "" when Raw does not marshal.
func (c *Claims) GrantDigest() string {
	if d := c.digest.Load(); d != nil {
		return *d
	}
	d := grantDigest(c.Raw)
	c.digest.Store(&d)
	return d
}

// Result is the outcome of verifying one Authorization header value.
type Result struct {
	Status Status
	Reason Reason
	// Message explains a failure for logs; it never contains the token.
	Message string
	// Issuer is the configured issuer name whose key verified the token (or
	// that the token claimed, on failure, when known).
	Issuer string
	Kind   Kind
	Claims *Claims // set when Status is valid
	// Hash is the hex SHA-256 of the raw token ("" when there is none): a
	// cache key and the only form of the token that may be logged.
	Hash string
}

// GatewayMessage returns the error text the AI gateway answers for a failure
// of this kind (facts §3.2): the 401 body of a missing header, a header that
// is not `Bearer <token>`, and a token that does not verify.
func (r Reason) GatewayMessage() string {
	switch r {
	case ReasonOK:
		return ""
	case ReasonMissing:
		return "No authorization header presented"
	case ReasonMalformedHeader:
		return "Invalid authorization header"
	}
	return "Forbidden by auth provider"
}
