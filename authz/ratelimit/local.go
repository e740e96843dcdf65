package ratelimit

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// DefaultMaxBuckets bounds the local limiter's token buckets when the
// configuration names no bound.
const DefaultMaxBuckets = 100_000

// Limiter is the embedded, single-node limiter: it enforces a backend's Plan
// with token buckets (a burst of requests_per_unit, refilled evenly over the
// unit), where envoyproxy/ratelimit counts fixed windows; both allow
// requests_per_unit per unit on average. It is safe for concurrent use and
// its memory is bounded (see Buckets). Buckets survive policy reloads: they
// are keyed by descriptor, not by snapshot.
type Limiter struct {
	buckets *Buckets
	now     func() time.Time
	limited *prometheus.CounterVec
	size    prometheus.GaugeFunc
}

// NewLimiter returns a limiter holding at most maxBuckets buckets (<= 0:
// DefaultMaxBuckets); now is its clock (nil: time.Now).
func NewLimiter(maxBuckets int, now func() time.Time) *Limiter {
	if maxBuckets <= 0 {
		maxBuckets = DefaultMaxBuckets
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{buckets: NewBuckets(maxBuckets), now: now}
	l.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ccauthz_rate_limited_total",
		Help: "Checks answered 429 by the local rate limiter, by backend and limit kind (per_instance, per_user, auth_failures).",
	}, []string{"backend", "kind"})
	l.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ccauthz_rate_limit_buckets",
		Help: "Token buckets the local rate limiter holds (bounded by rate_limit.max_buckets).",
	}, func() float64 { return float64(l.buckets.Len()) })
	return l
}

// Collectors are the limiter's metrics, for the server's registry.
func (l *Limiter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.limited, l.size}
}

// Verdict is the limiter's answer for one check.
type Verdict struct {
	// Limited is true when a limit tripped.
	Limited bool
	Kind    Kind
	// Descriptor is the descriptor that tripped (see Descriptor).
	Descriptor string
	// RetryAfter is how long until the bucket has a token again.
	RetryAfter time.Duration
}

// Check applies p to a decision: an allowed request takes one token from its
// per-instance and per-user buckets (the first empty one trips); a 401
// answer takes one from the client's auth-failure bucket. client identifies
// the caller for auth failures (see Client). Other decisions pass untouched.
func (l *Limiter) Check(p *Plan, d *policy.Decision, client string) Verdict {
	if p == nil {
		return Verdict{}
	}
	now := l.now()
	switch {
	case d.Allow:
		for _, k := range EnvoyKinds {
			lim, ok := p.Resolve(k, d.RateLimit.Entries)
			if !ok {
				continue
			}
			key := Descriptor(k, d.RateLimit.Entries)
			if v := l.take(p, k, key, lim, now); v.Limited {
				return v
			}
		}
	case d.Status == 401:
		lim, ok := p.AuthFailures()
		if !ok || client == "" {
			return Verdict{}
		}
		key := KindKey + "=" + string(KindAuthFailures) + "," + EntryBackend + "=" + p.Backend + ",client=" + client
		return l.take(p, KindAuthFailures, key, lim, now)
	}
	return Verdict{}
}

func (l *Limiter) take(p *Plan, k Kind, key string, lim manifest.Limit, now time.Time) Verdict {
	rate := float64(lim.RequestsPerUnit) / unitSeconds(lim.Unit)
	ok, wait := l.buckets.Take(key, lim.RequestsPerUnit, rate, now)
	if ok {
		return Verdict{}
	}
	l.limited.WithLabelValues(p.Label, string(k)).Inc()
	return Verdict{Limited: true, Kind: k, Descriptor: key, RetryAfter: wait}
}

// Client is the auth-failure key of a request: its X-Gitlab-Instance-Id
// header when present (many instances may share an egress address), else its
// source address, else "" (not counted: one shared bucket would let a single
// client turn everyone's 401s into 429s).
func Client(headers map[string]string, sourceAddress string) string {
	if id := headers["x-gitlab-instance-id"]; id != "" {
		return "instance:" + id
	}
	if sourceAddress != "" {
		return "address:" + sourceAddress
	}
	return ""
}

// RateLimitedBody is the 429 body, the AI gateway's own wording.
const RateLimitedBody = "Too many requests. Please try again later."

// ccauthzHeaders are the upstream headers the policy owns; a 429 removes
// them all so a dry-run pass-through never carries forged ones.
var ccauthzHeaders = []string{
	"x-ccauthz-decision", "x-ccauthz-issuer", "x-ccauthz-realm",
	"x-ccauthz-route", "x-ccauthz-subject", "x-ccauthz-unit-primitive",
}

// Deny turns d into the 429 answer for v: reason rate_limited, the gateway's
// body and Retry-After in whole seconds (at least 1). Route, unit primitives,
// rate-limit entries and dry-run flag are kept.
func (v Verdict) Deny(d policy.Decision) policy.Decision {
	secs := int64(math.Ceil(v.RetryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	d.Allow = false
	d.Status = 429
	d.Reason = policy.ReasonRateLimited
	d.Body = map[string]any{"detail": RateLimitedBody}
	d.Headers = nil
	d.HeadersToRemove = slices.Clone(ccauthzHeaders)
	d.ResponseHeaders = map[string]string{"retry-after": strconv.FormatInt(secs, 10)}
	return d
}
