package identity

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Request headers the identity step reads (lower case, as the policy input
// carries them).
const (
	HeaderInstanceID   = "x-gitlab-instance-id"
	HeaderGlobalUserID = "x-gitlab-global-user-id"
	HeaderRealm        = "x-gitlab-realm"
	HeaderSeatCount    = "x-gitlab-duo-seat-count"
)

// Claims the identity step reads.
const (
	ClaimSubject    = "sub"
	ClaimInstanceID = "gitlab_instance_id"
	ClaimRealm      = "gitlab_realm"
	ClaimSeatCount  = "duo_seat_count"
)

// Unknown is the value of an identity nothing names (the rate-limit entry
// default: such a request is not limited per instance or per user).
const Unknown = "unknown"

// Source says where an identity value came from.
type Source uint8

// Sources of an identity value.
const (
	FromDefault Source = iota // neither claim nor header: Unknown (or "any")
	FromClaim                 // a verified claim
	FromHeader                // a request header, because the token has no such claim
)

func (s Source) String() string {
	switch s {
	case FromClaim:
		return "claim"
	case FromHeader:
		return "header"
	}
	return "default"
}

// Value is one identity value and its provenance.
type Value struct {
	Value string
	From  Source
	// Claim names the claim when From is FromClaim.
	Claim string
	// HeaderIgnored is true when the request also carried the header with a
	// different value, which the claim overrode (a contradiction no binding
	// rejected: only logged, as the AI gateway does for the seat count).
	HeaderIgnored bool
}

// Identity is who is calling, for rate limits and logs.
type Identity struct {
	InstanceID   Value
	GlobalUserID Value
	Realm        Value
	// SeatBucket is any, small, medium or large (manifest.Seat*).
	SeatBucket Value
	// Subject is the sub claim of a valid token when it is a string, else ""
	// (the upstream header x-ccauthz-subject). ClaimRealm is the gitlab_realm
	// claim alike (x-ccauthz-realm): unlike Realm it is never a header or
	// Unknown. The policy only copies both, so the decision cache does not
	// key on them and Decide fills them in after it.
	Subject    string
	ClaimRealm string
}

// Request is what the identity step reads of a check.
type Request struct {
	// TokenValid is true when the token verified; claims of any other token
	// are never used.
	TokenValid bool
	Kind       string         // "instance" or "user"
	Claims     map[string]any // verified claims
	Headers    map[string]string
}

// Resolve computes the identity of a request (docs/policy.md "Identity"):
//
//	instance_id:    claim gitlab_instance_id, else sub of an instance token, else the header
//	global_user_id: sub of a user token, else the header
//	realm:          claim gitlab_realm, else the header
//	seat_bucket:    claim duo_seat_count, else the header
//	subject:        claim sub when a string, else ""
//	claim_realm:    claim gitlab_realm when a string, else ""
//
// A claim counts when the token is valid and the claim is a non-empty string
// (duo_seat_count: present and not null or ""). The header is read only when
// no claim counts, so a header can never change what the token says.
func Resolve(r Request, seats manifest.SeatBuckets) Identity {
	var id Identity
	claims := r.Claims
	if !r.TokenValid {
		claims = nil
	}
	id.InstanceID = pick(claims, r.Headers, HeaderInstanceID, ClaimInstanceID)
	if id.InstanceID.From != FromClaim && r.Kind != "user" {
		if v := pick(claims, r.Headers, HeaderInstanceID, ClaimSubject); v.From == FromClaim {
			id.InstanceID = v
		}
	}
	id.GlobalUserID = pick(claims, r.Headers, HeaderGlobalUserID, "")
	if r.Kind == "user" {
		id.GlobalUserID = pick(claims, r.Headers, HeaderGlobalUserID, ClaimSubject)
	}
	id.Realm = pick(claims, r.Headers, HeaderRealm, ClaimRealm)
	id.SeatBucket = seatBucket(claims, r.Headers, seats)
	id.Subject, _ = claims[ClaimSubject].(string)
	id.ClaimRealm, _ = claims[ClaimRealm].(string)
	return id
}

// pick takes the claim when it is a non-empty string, else the non-empty
// header, else Unknown.
func pick(claims map[string]any, headers map[string]string, header, claim string) Value {
	h, hasHeader := headers[header]
	if claim != "" {
		if c, ok := claims[claim].(string); ok && c != "" {
			return Value{Value: c, From: FromClaim, Claim: claim, HeaderIgnored: hasHeader && h != "" && h != c}
		}
	}
	if h != "" {
		return Value{Value: h, From: FromHeader}
	}
	return Value{Value: Unknown}
}

func seatBucket(claims map[string]any, headers map[string]string, seats manifest.SeatBuckets) Value {
	h, hasHeader := headers[HeaderSeatCount]
	if c, ok := claims[ClaimSeatCount]; ok && c != nil && c != "" {
		n, valid := seatCountClaim(c)
		v := Value{Value: manifest.SeatAny, From: FromClaim, Claim: ClaimSeatCount}
		if valid {
			v.Value = Bucket(n, seats)
		}
		if hasHeader && h != "" {
			hn, hvalid := seatCountHeader(h)
			v.HeaderIgnored = hvalid != valid || hn != n
		}
		return v
	}
	if hasHeader && h != "" {
		if n, ok := seatCountHeader(h); ok {
			return Value{Value: Bucket(n, seats), From: FromHeader}
		}
		return Value{Value: manifest.SeatAny, From: FromHeader}
	}
	return Value{Value: manifest.SeatAny}
}

// Bucket maps a positive seat count to its bucket.
func Bucket(n int64, seats manifest.SeatBuckets) string {
	switch {
	case n <= int64(seats.SmallMax):
		return manifest.SeatSmall
	case n <= int64(seats.MediumMax):
		return manifest.SeatMedium
	}
	return manifest.SeatLarge
}

// maxSeatCount bounds a seat count; anything larger is not a seat count.
const maxSeatCount = 1 << 40

// seatCountHeader reads a header seat count: decimal digits only, at least 1.
func seatCountHeader(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 13 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > maxSeatCount {
		return 0, false
	}
	return n, true
}

// seatCountClaim reads a claim seat count: a positive integral JSON number,
// or a string of decimal digits.
func seatCountClaim(v any) (int64, bool) {
	var f float64
	switch t := v.(type) {
	case float64:
		f = t
	case int:
		f = float64(t)
	case int64:
		f = float64(t)
	case json.Number:
		x, err := t.Float64()
		if err != nil {
			return 0, false
		}
		f = x
	case string:
		return seatCountHeader(strings.TrimSpace(t))
	default:
		return 0, false
	}
	if f < 1 || f > maxSeatCount || f != float64(int64(f)) {
		return 0, false
	}
	return int64(f), true
}

// Mismatch is the outcome of the manifest's claim↔header bindings: the
// header (as the manifest spells it) of the first binding, in order, whose
// claim is present and not "" and differs from the header ("" when the
// header is absent), or "" when every binding holds. It mirrors the generated
// Rego rule header_mismatch exactly: the decision cache keys on this outcome
// instead of the bound headers' values.
func Mismatch(bindings []manifest.Binding, kind string, claims map[string]any, headers map[string]string) string {
	for _, b := range bindings {
		switch b.TokenKind {
		case "user":
			if kind != "user" {
				continue
			}
		case "instance":
			if kind == "user" {
				continue
			}
		}
		c, ok := claims[b.Claim]
		if !ok || c == nil || c == "" {
			continue
		}
		if s, isString := c.(string); !isString || headers[b.HeaderKey()] != s {
			return b.Header
		}
	}
	return ""
}

// String renders the provenance for the decision log, e.g.
// "instance_id=claim:sub global_user_id=header realm=claim:gitlab_realm seat_bucket=default".
func (id Identity) String() string {
	var b strings.Builder
	for i, f := range []struct {
		name string
		v    Value
	}{{"instance_id", id.InstanceID}, {"global_user_id", id.GlobalUserID}, {"realm", id.Realm}, {"seat_bucket", id.SeatBucket}} {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.name)
		b.WriteByte('=')
		b.WriteString(f.v.From.String())
		if f.v.From == FromClaim {
			b.WriteByte(':')
			b.WriteString(f.v.Claim)
		}
		if f.v.HeaderIgnored {
			b.WriteString("(header ignored)")
		}
	}
	return b.String()
}
