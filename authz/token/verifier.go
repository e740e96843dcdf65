package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// Defaults of Options.
const (
	DefaultMaxTokenBytes = 16 << 10
	DefaultCacheEntries  = 100_000
	DefaultCacheBytes    = 16 << 20
	// maxKidlessTries bounds the keys tried for a token without kid: each
	// try is a full signature check.
	maxKidlessTries = 8
)

// Options are the dependencies and limits of a Verifier; zero fields take
// defaults.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HTTPClient fetches discovery documents and JWKS.
	HTTPClient *http.Client
	// MaxTokenBytes rejects longer tokens before parsing (default 16 KiB).
	MaxTokenBytes int
	// ClockSkew is the leeway on exp and nbf (default 0, as the AI
	// gateway); iat is never compared with the clock.
	ClockSkew time.Duration
	// CacheEntries and CacheBytes bound the verified-token cache (defaults
	// 100000 entries, 16 MiB estimated). A negative CacheEntries disables
	// the cache.
	CacheEntries int
	CacheBytes   int
	// Logger receives key-cache events; tokens are never logged.
	Logger *slog.Logger
	// Metrics are optional hooks.
	Metrics Metrics
	// FilePollInterval and RetryMin tune the key caches (see jwks.Options).
	FilePollInterval time.Duration
	RetryMin         time.Duration
	// Tracer, when set, traces key fetches (see jwks.Options).
	Tracer trace.Tracer
}

// Metrics are hooks a server wires to its metrics registry. Nil hooks are
// skipped.
type Metrics struct {
	// Verified is called once per Verify with the issuer name ("" when
	// unknown) and whether the verified-token cache answered.
	Verified func(issuer string, status Status, reason Reason, cached bool)
	// KeyFetch is called after every key fetch attempt.
	KeyFetch func(issuer string, err error, took time.Duration)
}

// Verifier verifies Authorization header values against the configured
// issuers. It is safe for concurrent use.
type Verifier struct {
	opts   Options
	byIss  map[string]*issuer
	list   []*issuer
	cache  *verifiedCache
	maxLen int
	// intern shares claim names, scope lists and other repeated values
	// between cached tokens.
	intern interner
}

type issuer struct {
	cfg  IssuerConfig
	keys *jwks.Cache
}

// NewVerifier validates the issuers and builds a verifier. Call Start to load
// the keys and Close to stop the refreshers.
func NewVerifier(issuers []IssuerConfig, opts Options) (*Verifier, error) {
	if err := ValidateIssuers(issuers); err != nil {
		return nil, fmt.Errorf("invalid issuer configuration:\n%w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxTokenBytes <= 0 {
		opts.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if opts.ClockSkew < 0 {
		return nil, errors.New("clock skew must not be negative")
	}
	if opts.CacheEntries == 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	v := &Verifier{opts: opts, byIss: map[string]*issuer{}, maxLen: opts.MaxTokenBytes}
	if opts.CacheEntries > 0 {
		v.cache = newVerifiedCache(opts.CacheEntries, opts.CacheBytes)
	}
	for _, ic := range issuers {
		ic = ic.WithDefaults()
		kc, err := jwks.New(jwks.Config{
			Issuer:             ic.Name,
			DiscoveryURL:       ic.DiscoveryURL,
			JWKSURL:            ic.JWKSURL,
			File:               ic.JWKSFile,
			RefreshFloor:       ic.Keys.RefreshFloor,
			RefreshCeiling:     ic.Keys.RefreshCeiling,
			StaleMaxAge:        ic.Keys.StaleMaxAge,
			UnknownKIDInterval: ic.Keys.UnknownKIDInterval,
			FetchTimeout:       ic.Keys.FetchTimeout,
		}, jwks.Options{
			Client:           opts.HTTPClient,
			Now:              opts.Now,
			Logger:           opts.Logger,
			FilePollInterval: opts.FilePollInterval,
			RetryMin:         opts.RetryMin,
			OnFetch:          opts.Metrics.KeyFetch,
			Tracer:           opts.Tracer,
		})
		if err != nil {
			v.Close()
			return nil, err
		}
		is := &issuer{cfg: ic, keys: kc}
		v.byIss[ic.Issuer] = is
		v.list = append(v.list, is)
	}
	return v, nil
}

// Start loads every issuer's keys in the background and keeps them fresh
// until ctx is done or Close is called.
func (v *Verifier) Start(ctx context.Context) {
	for _, is := range v.list {
		is.keys.Start(ctx)
	}
}

// WaitReady blocks until every issuer's keys were loaded and validated, or
// ctx is done; the error then names each issuer that is not ready and why.
func (v *Verifier) WaitReady(ctx context.Context) error {
	var errs []error
	for _, is := range v.list {
		if err := is.keys.WaitReady(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the key refreshers and waits for them.
func (v *Verifier) Close() {
	for _, is := range v.list {
		is.keys.Close()
	}
}

// Status returns the key status of every issuer, in configuration order.
func (v *Verifier) Status() []jwks.Status {
	out := make([]jwks.Status, len(v.list))
	for i, is := range v.list {
		out[i] = is.keys.Status()
	}
	return out
}

// Stats returns the verified-token cache counters.
func (v *Verifier) Stats() CacheStats {
	if v.cache == nil {
		return CacheStats{}
	}
	return v.cache.stats()
}

// Verify verifies an Authorization header value for a backend whose
// jwt_aud is audience. It never panics and returns by ctx's deadline (only
// a refetch for an unknown kid waits). The returned Claims are shared with
// the cache and must not be modified.
func (v *Verifier) Verify(ctx context.Context, authorization, audience string) (res Result) {
	cached := false
	defer func() {
		if p := recover(); p != nil {
			// Fail closed: a bug must not take the server down nor let a
			// token through.
			v.opts.Logger.Error("token verification panicked", "panic", fmt.Sprint(p), "token_sha256", res.Hash)
			res = Result{Status: StatusInvalid, Reason: ReasonMalformed, Message: "internal error while verifying the token", Hash: res.Hash}
		}
		if m := v.opts.Metrics.Verified; m != nil {
			m(res.Issuer, res.Status, res.Reason, cached)
		}
	}()
	if authorization == "" {
		return Result{Status: StatusMissing, Reason: ReasonMissing, Message: "no Authorization header"}
	}
	// Split on the first space as the AI gateway does: a scheme other than
	// Bearer is a malformed header ("Invalid authorization header"), while
	// a bare "Bearer" or "Bearer " has the right scheme and an empty token,
	// which the gateway hands to its JWT decoder and answers "Forbidden by
	// auth provider": an invalid token here too.
	scheme, tok, _ := strings.Cut(authorization, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Result{Status: StatusMalformed, Reason: ReasonMalformedHeader, Message: "Authorization is not \"Bearer <token>\""}
	}
	if tok == "" {
		return Result{Status: StatusInvalid, Reason: ReasonMalformed, Message: "Authorization has the Bearer scheme but no token"}
	}
	sum := sha256.Sum256([]byte(tok))
	if len(tok) > v.maxLen {
		return Result{Status: StatusInvalid, Reason: ReasonTooLarge, Hash: hex.EncodeToString(sum[:]),
			Message: fmt.Sprintf("token is %d bytes, more than the limit of %d", len(tok), v.maxLen)}
	}
	now := v.opts.Now()
	if v.cache != nil {
		if e := v.cache.get(&sum); e != nil {
			if r, ok := v.fromCache(&sum, e, audience, now); ok {
				cached = true
				return r
			}
		}
	}
	res, key, payload := v.verifyKey(ctx, tok, now)
	res.Hash = hex.EncodeToString(sum[:])
	if res.Status != StatusValid {
		return res
	}
	if v.cache != nil {
		// The entry keeps the verified payload's JSON, not the token nor
		// its decoded claims: those are decoded on the entry's first hit
		// (cacheEntry), so a token presented once costs its payload bytes.
		e := &cacheEntry{iss: v.byIss[res.Claims.Issuer], key: key, hash: res.Hash, expiry: res.Claims.Expiry}
		st := &entryState{payload: payload}
		e.state.Store(st)
		e.cost = entryCost(st)
		v.cache.put(&sum, e, now)
	}
	return checkAudience(res, audience)
}

// fromCache answers from a cache entry when it is still good: not expired,
// the issuer's keys available, the verifying key not rotated away. The
// entry's first hit decodes its payload (promote).
func (v *Verifier) fromCache(sum *[32]byte, e *cacheEntry, audience string, now time.Time) (Result, bool) {
	if !now.Before(e.expiry.Add(v.opts.ClockSkew)) {
		v.cache.remove(sum, e)
		return Result{}, false
	}
	snap := e.iss.keys.Current()
	if snap == nil {
		return Result{}, false
	}
	if !snap.Contains(e.key) {
		v.cache.remove(sum, e)
		return Result{}, false
	}
	st := e.state.Load()
	claims := st.claims
	if claims == nil {
		var ok bool
		if claims, ok = v.promote(sum, e, st.payload, now); !ok {
			return Result{}, false
		}
	}
	return checkAudience(Result{Status: StatusValid, Reason: ReasonOK, Issuer: e.iss.cfg.Name,
		Kind: e.iss.cfg.Kind, Claims: claims, Hash: e.hash}, audience), true
}

// promote decodes a cached payload into claims, compacted (shared claim
// names, scope lists and issuer values), and keeps them in the entry in
// place of the payload. Two concurrent first hits may both decode; either
// result is the same. A payload that no longer yields valid claims (it
// cannot: it was verified with the same rules) drops the entry, and the
// token is verified again.
func (v *Verifier) promote(sum *[32]byte, e *cacheEntry, payload []byte, now time.Time) (*Claims, bool) {
	var p map[string]any
	if err := json.Unmarshal(payload, &p); err != nil || p == nil {
		v.cache.remove(sum, e)
		return nil, false
	}
	claims, reason, _ := v.claims(v.intern.compact(p), e.iss, now)
	if reason != ReasonOK {
		v.cache.remove(sum, e)
		return nil, false
	}
	st := &entryState{claims: claims}
	v.cache.promote(sum, e, st, entryCost(st), now)
	return claims, true
}

func checkAudience(r Result, audience string) Result {
	if audience == "" {
		return r.fail(ReasonBadAudience, "no audience is configured for this backend")
	}
	if !slices.Contains(r.Claims.Audience, audience) {
		return r.fail(ReasonBadAudience, fmt.Sprintf("token audience %s does not include %q", truncate(fmt.Sprintf("%q", r.Claims.Audience)), audience))
	}
	return r
}

func (r Result) fail(reason Reason, msg string) Result {
	r.Status, r.Reason, r.Message, r.Claims = StatusInvalid, reason, msg, nil
	return r
}

// verifyKey does the full check of tok (everything but the audience) and
// returns, for a valid token, the key that verified it and the payload's
// JSON.
func (v *Verifier) verifyKey(ctx context.Context, tok string, now time.Time) (Result, *jwks.Key, []byte) {
	c, err := parseCompact(tok)
	if err != nil {
		return Result{Status: StatusInvalid, Reason: ReasonMalformed, Message: err.Error()}, nil, nil
	}
	iss, ok := c.payload["iss"].(string)
	if !ok {
		return Result{Status: StatusInvalid, Reason: ReasonUnknownIssuer, Message: "token has no iss claim (string)"}, nil, nil
	}
	is := v.byIss[iss]
	if is == nil {
		return Result{Status: StatusInvalid, Reason: ReasonUnknownIssuer, Message: fmt.Sprintf("issuer %q is not configured", truncate(iss))}, nil, nil
	}
	r := Result{Issuer: is.cfg.Name, Kind: is.cfg.Kind}
	alg := c.header.Alg
	if !slices.Contains(is.cfg.Algorithms, alg) {
		return r.invalid(ReasonDisallowedAlgorithm, fmt.Sprintf("algorithm %q is not allowed for issuer %s (allowed: %s)",
			truncate(alg), is.cfg.Name, strings.Join(is.cfg.Algorithms, ", "))), nil, nil
	}
	snap := is.keys.Current()
	if snap == nil {
		return r.unavailable(fmt.Sprintf("keys of issuer %s are unavailable", is.cfg.Name)), nil, nil
	}
	var key *jwks.Key
	if c.header.Kid != nil {
		kid := *c.header.Kid
		k, found := snap.Key(kid)
		if !found {
			snap, err = is.keys.Refetch(ctx, kid)
			if err != nil {
				return r.unavailable(fmt.Sprintf("keys of issuer %s are unavailable: %v", is.cfg.Name, err)), nil, nil
			}
			if k, found = snap.Key(kid); !found {
				return r.invalid(ReasonUnknownKey, fmt.Sprintf("issuer %s has no key with kid %q", is.cfg.Name, truncate(kid))), nil, nil
			}
		}
		err = verifySignature(alg, k, c.signingInput, c.signature)
		if errors.Is(err, errKeyMismatch) {
			return r.invalid(ReasonDisallowedAlgorithm, fmt.Sprintf("key %q of issuer %s is not a key for %s", truncate(kid), is.cfg.Name, alg)), nil, nil
		}
		if err != nil {
			return r.invalid(ReasonBadSignature, fmt.Sprintf("signature does not verify with key %q of issuer %s", truncate(kid), is.cfg.Name)), nil, nil
		}
		key = k
	} else {
		tries := 0
		for _, k := range snap.Keys() {
			if tries == maxKidlessTries {
				break
			}
			err := verifySignature(alg, k, c.signingInput, c.signature)
			if errors.Is(err, errKeyMismatch) {
				continue
			}
			tries++
			if err == nil {
				key = k
				break
			}
		}
		if key == nil {
			if tries == 0 {
				return r.invalid(ReasonUnknownKey, fmt.Sprintf("issuer %s has no %s key for a token without kid", is.cfg.Name, alg)), nil, nil
			}
			return r.invalid(ReasonBadSignature, fmt.Sprintf("token without kid: signature verifies with none of %d keys of issuer %s", tries, is.cfg.Name)), nil, nil
		}
	}
	claims, reason, msg := v.claims(c.payload, is, now)
	if reason != ReasonOK {
		return r.invalid(reason, msg), nil, nil
	}
	r.Status, r.Reason, r.Claims = StatusValid, ReasonOK, claims
	return r, key, c.rawPayload
}

func (r Result) invalid(reason Reason, msg string) Result {
	r.Status, r.Reason, r.Message = StatusInvalid, reason, msg
	return r
}

func (r Result) unavailable(msg string) Result {
	r.Status, r.Reason, r.Message = StatusUnavailable, ReasonKeysUnavailable, msg
	return r
}

// truncate bounds attacker-chosen strings quoted in messages.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
