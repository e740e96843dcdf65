package token

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// claims checks and extracts the registered and GitLab claims of a verified
// payload. The audience is checked by the caller, per request.
func (v *Verifier) claims(p map[string]any, is *issuer, now time.Time) (*Claims, Reason, string) {
	c := &Claims{Raw: p}
	var ok bool
	c.Issuer = p["iss"].(string) // checked by the caller
	if c.Subject, ok = optString(p, "sub"); !ok {
		return nil, ReasonBadClaims, "claim sub must be a string"
	}
	if c.JTI, ok = optString(p, "jti"); !ok {
		return nil, ReasonBadClaims, "claim jti must be a string"
	}
	if c.Realm, ok = optString(p, "gitlab_realm"); !ok {
		return nil, ReasonBadClaims, "claim gitlab_realm must be a string"
	}
	if c.InstanceID, ok = optString(p, "gitlab_instance_id"); !ok {
		return nil, ReasonBadClaims, "claim gitlab_instance_id must be a string"
	}
	skew := v.opts.ClockSkew
	exp, present, ok := numericDate(p, "exp")
	switch {
	case !present:
		return nil, ReasonMissingExpiry, "token has no exp claim"
	case !ok:
		return nil, ReasonBadClaims, "claim exp must be a number of seconds"
	case !now.Before(exp.Add(skew)):
		return nil, ReasonExpired, fmt.Sprintf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	c.Expiry = exp
	nbf, present, ok := numericDate(p, "nbf")
	switch {
	case present && !ok:
		return nil, ReasonBadClaims, "claim nbf must be a number of seconds"
	case present && now.Add(skew).Before(nbf):
		return nil, ReasonNotYetValid, fmt.Sprintf("token is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if present {
		c.NotBefore = nbf
	}
	// iat is only type-checked, never compared with the clock: the AI
	// gateway (python-jose) accepts a token issued "in the future", and
	// GitLab's nbf = iat - 5s lets a signer whose clock runs up to 5 s fast
	// through there. nbf and exp carry the validity window.
	iat, present, ok := numericDate(p, "iat")
	if present && !ok {
		return nil, ReasonBadClaims, "claim iat must be a number of seconds"
	}
	if present {
		c.IssuedAt = iat
	}
	switch aud := p["aud"].(type) {
	case nil:
		return nil, ReasonMissingAudience, "token has no aud claim"
	case string:
		if aud == "" {
			return nil, ReasonMissingAudience, "token has an empty aud claim"
		}
		c.Audience = []string{aud}
	case []any:
		if len(aud) == 0 {
			return nil, ReasonMissingAudience, "token has an empty aud claim"
		}
		if c.Audience, ok = v.intern.strings(aud); !ok {
			return nil, ReasonBadClaims, "claim aud must be a string or an array of strings"
		}
	default:
		return nil, ReasonBadClaims, "claim aud must be a string or an array of strings"
	}
	switch sc := p["scopes"].(type) {
	case nil:
		if _, present := p["scopes"]; present {
			return nil, ReasonBadClaims, "claim scopes must be an array of strings"
		}
		c.Scopes = []string{}
	case []any:
		if c.Scopes, ok = v.intern.strings(sc); !ok {
			return nil, ReasonBadClaims, "claim scopes must be an array of strings"
		}
	default:
		return nil, ReasonBadClaims, "claim scopes must be an array of strings"
	}
	if is.cfg.Realm != "" && c.Realm != is.cfg.Realm {
		return nil, ReasonBadClaims, fmt.Sprintf("claim gitlab_realm is %q, issuer %s accepts only %q", truncate(c.Realm), is.cfg.Name, is.cfg.Realm)
	}
	return c, ReasonOK, ""
}

// PerTokenClaims returns the claims that differ between two tokens an issuer
// mints for the same grant (GitLab.com mints a fresh token per request).
// GrantDigest leaves them out.
func PerTokenClaims() []string { return []string{"jti", "iat", "nbf", "exp"} }

// grantDigest is the hex SHA-256 of the payload's canonical JSON without the
// per-token claims. The payload came from JSON, so it always marshals;
// encoding/json sorts object keys, which makes the encoding canonical.
func grantDigest(p map[string]any) string {
	rest := make(map[string]any, len(p))
	for k, v := range p {
		rest[k] = v
	}
	for _, k := range PerTokenClaims() {
		delete(rest, k)
	}
	b, err := json.Marshal(rest)
	if err != nil {
		return "" // no digest: callers fall back to the token hash
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// optString reads an optional string claim; ok is false when it is present
// with another type.
func optString(p map[string]any, name string) (string, bool) {
	v, present := p[name]
	if !present {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

// numericDate reads a NumericDate claim (seconds since the epoch, possibly
// fractional).
func numericDate(p map[string]any, name string) (t time.Time, present, ok bool) {
	v, present := p[name]
	if !present {
		return time.Time{}, false, false
	}
	f, isNum := v.(float64)
	if !isNum || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}
