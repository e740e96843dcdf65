package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy/identity"
)

// maxCacheKey bounds the size of a cache key; requests with longer keys (huge
// paths or header values) are evaluated without the cache.
const maxCacheKey = 4096

// CcauthzHeaders are the upstream headers the policy sets on allow (see the
// README). Every one a decision does not set is in its HeadersToRemove, so a
// client cannot forge them.
func CcauthzHeaders() []string {
	return []string{
		"x-ccauthz-decision",
		"x-ccauthz-issuer",
		"x-ccauthz-realm",
		"x-ccauthz-route",
		"x-ccauthz-subject",
		"x-ccauthz-unit-primitive",
	}
}

// Fault is the fail-closed decision for a fault outside the policy
// (ReasonInternalError: 500; ReasonDeadlineExceeded: 503). Callers use it when
// Decide returns an error; Decide returns it alongside the error too.
func Fault(reason Reason, backend string) Decision {
	status, msg := 500, "Internal authorization error"
	if reason == ReasonDeadlineExceeded {
		status, msg = 503, "Authorization deadline exceeded"
	}
	return Decision{
		Status:          status,
		Body:            map[string]any{"error": msg},
		Reason:          reason,
		UnitPrimitives:  []string{},
		Headers:         map[string]string{},
		HeadersToRemove: CcauthzHeaders(),
		ResponseHeaders: map[string]string{},
		RateLimit: RateLimit{Entries: map[string]string{
			"backend": backend, "unit_primitive": "none", "instance_id": "unknown",
			"global_user_id": "unknown", "realm": "unknown", "seat_bucket": "any", "rate_class": "none",
		}},
	}
}

// CacheOutcome is how the decision cache took part in one Decide: a trace
// attribute, not part of the decision.
type CacheOutcome string

// Decision cache outcomes.
const (
	CacheOff         CacheOutcome = "off"
	CacheHit         CacheOutcome = "hit"
	CacheMiss        CacheOutcome = "miss"
	CacheUncacheable CacheOutcome = "uncacheable"
)

// Decide evaluates the policy for one request. A denial is a Decision, not an
// error; an error means a fault (evaluation failure, deadline) and comes with
// the fail-closed Fault decision.
func (p *Policy) Decide(ctx context.Context, in *Input) (Decision, error) {
	d, _, err := p.DecideCached(ctx, in)
	return d, err
}

// DecideCached is Decide that also reports the decision cache's part (for
// tracing).
func (p *Policy) DecideCached(ctx context.Context, in *Input) (Decision, CacheOutcome, error) {
	if in == nil {
		return Fault(ReasonInternalError, p.backend), CacheOff, errors.New("policy: nil input")
	}
	// The identity step runs once per check; its values are copied into the
	// decision after the cache, so the cache never keys on them.
	id := p.identify(in)
	key, cacheable, outcome := "", false, CacheOff
	if p.cache != nil {
		key, cacheable = p.cacheKey(in, &id)
		if !cacheable {
			p.stats.uncacheable.Add(1)
			outcome = CacheUncacheable
		} else if d, ok := p.cache.get(key); ok {
			p.stats.hits.Add(1)
			d = d.clone()
			fillIdentity(&d, &id)
			return d, CacheHit, nil
		} else {
			p.stats.misses.Add(1)
			outcome = CacheMiss
		}
	}
	d, err := p.eval(ctx, in, &id)
	if err != nil {
		reason := ReasonInternalError
		if ctx.Err() != nil {
			reason = ReasonDeadlineExceeded
		}
		return Fault(reason, p.backend), outcome, err
	}
	if cacheable && !p.routes.agrees(in, d.Route) {
		// The key named the route Go matched; a decision for another route
		// must not be served to the requests that share that key.
		p.stats.uncacheable.Add(1)
		p.stats.routeDisagreements.Add(1)
		cacheable = false
	}
	if cacheable {
		if p.cache.put(key, d) {
			p.stats.evictions.Add(1)
		}
		d = d.clone()
	}
	fillIdentity(&d, &id)
	return d, outcome, nil
}

// identify is the identity step of one check (package identity).
func (p *Policy) identify(in *Input) identity.Identity {
	return identity.Resolve(identity.Request{
		TokenValid: in.Token.Status == TokenValid, Kind: in.Token.Kind,
		Claims: in.Token.Claims, Headers: in.Headers,
	}, p.seats)
}

// fillIdentity copies the identity into a decision: its rate-limit entries
// (the policy computed them for the request that filled the cache entry,
// which may have been another caller of the same grant) and Identity.
func fillIdentity(d *Decision, id *identity.Identity) {
	d.Identity = *id
	// The subject and claim realm headers likewise (set on allow only).
	if _, ok := d.Headers[headerSubject]; ok {
		d.Headers[headerSubject] = id.Subject
	}
	if _, ok := d.Headers[headerRealm]; ok {
		d.Headers[headerRealm] = id.ClaimRealm
	}
	if e := d.RateLimit.Entries; e != nil {
		e[ratelimitInstanceID] = id.InstanceID.Value
		e[ratelimitGlobalUserID] = id.GlobalUserID.Value
		e[ratelimitRealm] = id.Realm.Value
		e[ratelimitSeatBucket] = id.SeatBucket.Value
	}
}

// The identity entries of rate_limit.entries (authz/ratelimit names the same
// keys; policy must not import it).
const (
	ratelimitInstanceID   = "instance_id"
	ratelimitGlobalUserID = "global_user_id"
	ratelimitRealm        = "realm"
	ratelimitSeatBucket   = "seat_bucket"
)

// The upstream headers that copy identity values (CcauthzHeaders).
const (
	headerSubject = "x-ccauthz-subject"
	headerRealm   = "x-ccauthz-realm"
)

func (p *Policy) eval(ctx context.Context, in *Input, id *identity.Identity) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("policy: %w", err)
	}
	v, err := in.valueOf(id, &p.shape)
	if err != nil {
		return Decision{}, err
	}
	opts := p.evalOptions(v)
	rs, err := p.query.Eval(ctx, opts...)
	if err != nil {
		return Decision{}, fmt.Errorf("policy: evaluate: %w", err)
	}
	d, err := p.fast.readVerdict(rs, in, id)
	if errors.Is(err, errNoFastClass) {
		if rs, err = p.decision.Eval(ctx, opts...); err != nil {
			return Decision{}, fmt.Errorf("policy: evaluate: %w", err)
		}
		return parseResult(rs)
	}
	return d, err
}

// cacheKey builds the key from exactly what the compiled policy reads. A
// token with claims that cannot be keyed (the policy reads its claims
// dynamically and it has no grant digest or hash; a claim that does not
// marshal), and an oversized key, are evaluated without the cache.
func (p *Policy) cacheKey(in *Input, id *identity.Identity) (string, bool) {
	t := in.Token
	// The token part of the key: the values of the claims the policy reads
	// when it reads them by constant names only; else the grant digest when
	// the policy cannot tell tokens of one grant apart, else the token hash.
	// Each stands for the claims; without one, a token with claims cannot
	// be keyed.
	tokenKey := t.Hash
	switch {
	case p.reads.claimsDynamic == "":
		if k, ok := claimSetKey(&t, p.reads.claims); ok {
			tokenKey = "k" + k
		} else {
			tokenKey = ""
		}
	case p.grantKeyed:
		if d := grantDigest(&t); d != "" {
			tokenKey = "g" + d
		}
	}
	if t.Status != TokenValid && len(t.Claims) == 0 {
		// A token that did not verify reaches the policy only as its
		// status, reason, issuer and kind (all keyed below): keying on its
		// hash would give every garbage token its own entry.
		tokenKey = ""
	}
	if tokenKey == "" && (t.Status == TokenValid || len(t.Claims) > 0) {
		return "", false
	}
	var b strings.Builder
	b.Grow(128)
	write := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	write(in.Backend)
	write(tokenKey)
	write(t.Status)
	write(t.Reason)
	write(t.Issuer)
	write(t.Kind)
	// The request: the matched route and what its decision reads
	// (routekey.go), not the raw path and unit-primitive header.
	body, ok := p.routes.writeRequestKey(write, in, t.Status == TokenValid)
	if !ok {
		return "", false
	}
	if p.reads.query {
		write(in.Query)
	}
	if p.reads.host {
		write(in.Host)
	}
	if body && len(p.bodySelectors) > 0 {
		writeBodyKey(&b, in.Body, p.bodySelectors)
	}
	for _, h := range p.reads.headers {
		if h == upHeader {
			continue // keyed by writeRequestKey
		}
		if v, ok := in.Headers[h]; ok {
			write(v)
		} else {
			b.WriteByte('-') // absent differs from empty ("0:")
		}
		if b.Len() > maxCacheKey {
			return "", false
		}
	}
	if len(p.bindings) > 0 {
		// The bindings decide through their outcome, whoever else reads the
		// bound headers: the bound claims are left out of the claim key
		// (analyseClaims), so the outcome is always part of it.
		write(identity.Mismatch(p.bindings, t.Kind, t.Claims, in.Headers))
	}
	if p.reads.identity {
		write(id.InstanceID.Value)
		write(id.GlobalUserID.Value)
		write(id.Realm.Value)
		write(id.SeatBucket.Value)
		write(id.Subject)
		write(id.ClaimRealm)
	}
	if b.Len() > maxCacheKey {
		return "", false
	}
	return b.String(), true
}

// grantDigest is the token's GrantDigest, or else the one its ClaimKeys
// compute on demand (the verifier's claims do, once per token).
func grantDigest(t *TokenInput) string {
	if t.GrantDigest != "" {
		return t.GrantDigest
	}
	if g, ok := t.ClaimKeys.(interface{ GrantDigest() string }); ok {
		return g.GrantDigest()
	}
	return ""
}

// claimSetKey is token.ClaimSetKey of the token's claims.
func claimSetKey(t *TokenInput, names []string) (string, bool) {
	if t.ClaimKeys != nil {
		return t.ClaimKeys.ClaimSetKey(names)
	}
	return token.ClaimSetKey(t.Claims, names)
}

// Stats describes the policy's decision cache.
type Stats struct {
	Revision string `json:"revision"`
	// CacheEnabled is false when the cache was disabled by configuration or
	// because the policy reads something the cache cannot key on;
	// CacheDisabledReason says which.
	CacheEnabled        bool   `json:"cache_enabled"`
	CacheDisabledReason string `json:"cache_disabled_reason,omitempty"`
	CacheCapacity       int    `json:"cache_capacity"`
	CacheEntries        int    `json:"cache_entries"`
	Hits                uint64 `json:"hits"`
	Misses              uint64 `json:"misses"`
	Evictions           uint64 `json:"evictions"`
	// Uncacheable counts requests evaluated without the cache (a token whose
	// claims cannot be keyed, an oversized key).
	Uncacheable uint64 `json:"uncacheable"`
	// RouteDisagreements counts decisions not cached because the Rego
	// matched another route than the Go matcher that keyed the request (a
	// bug the matcher's differential test exists to prevent); they are
	// also counted in Uncacheable.
	RouteDisagreements uint64 `json:"route_disagreements"`
	// HeadersRead are the request headers the compiled policy reads (the
	// cache key's headers), sorted.
	HeadersRead []string `json:"headers_read"`
	// HeadersBound are the headers only the manifest's claim↔header bindings
	// read: the cache keys on the bindings' outcome, not on their values.
	HeadersBound  []string `json:"headers_bound"`
	ReadsIdentity bool     `json:"reads_identity,omitempty"`
	ReadsQuery    bool     `json:"reads_query"`
	ReadsHost     bool     `json:"reads_host"`
	// GrantKeyed is true when decisions are keyed on the token's grant digest
	// (claims without jti/iat/nbf/exp) instead of its hash; GrantKeyWhyNot
	// says what prevented it.
	GrantKeyed     bool   `json:"grant_keyed"`
	GrantKeyWhyNot string `json:"grant_key_why_not,omitempty"`
	// RouteKeyed is true when decisions are keyed on the matched route and
	// what its decision reads instead of the raw method, path and
	// unit-primitive header; RouteKeyWhyNot says what prevented it (in part).
	RouteKeyed     bool   `json:"route_keyed"`
	RouteKeyWhyNot string `json:"route_key_why_not,omitempty"`
	// ClaimsKeyed is true when a token is keyed on the values of the claims
	// the policy reads (ClaimsRead, sorted) instead of its grant digest or
	// hash; ClaimsKeyWhyNot names the read that prevented it.
	ClaimsKeyed     bool     `json:"claims_keyed"`
	ClaimsRead      []string `json:"claims_read"`
	ClaimsKeyWhyNot string   `json:"claims_key_why_not,omitempty"`
}

// Stats reports the cache configuration and counters.
func (p *Policy) Stats() Stats {
	s := Stats{
		Revision:           p.revision,
		HeadersRead:        slices.Clone(p.reads.headers),
		HeadersBound:       slices.Clone(p.reads.bindingHeaders),
		ReadsIdentity:      p.reads.identity,
		ReadsQuery:         p.reads.query,
		ReadsHost:          p.reads.host,
		Hits:               p.stats.hits.Load(),
		Misses:             p.stats.misses.Load(),
		Evictions:          p.stats.evictions.Load(),
		Uncacheable:        p.stats.uncacheable.Load(),
		RouteDisagreements: p.stats.routeDisagreements.Load(),
		GrantKeyed:         p.grantKeyed,
		GrantKeyWhyNot:     p.grantWhyNot,
		RouteKeyed:         p.routes.rawPath == "" && p.routes.rawHeader == "",
		RouteKeyWhyNot:     cmp.Or(p.routes.rawPath, p.routes.rawHeader),
		ClaimsKeyed:        p.reads.claimsDynamic == "",
		ClaimsRead:         slices.Clone(p.reads.claims),
		ClaimsKeyWhyNot:    p.reads.claimsDynamic,
	}
	switch {
	case p.cache != nil:
		s.CacheEnabled = true
		s.CacheCapacity = p.cache.cap
		s.CacheEntries = p.cache.len()
	case !p.reads.cacheable():
		s.CacheDisabledReason = p.reads.disabled
	default:
		s.CacheDisabledReason = "disabled by configuration"
	}
	return s
}
