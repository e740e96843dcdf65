package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Config is the key source and refresh policy of one issuer. Exactly one of
// DiscoveryURL, JWKSURL and File is set (package token validates that).
type Config struct {
	// Issuer names the issuer in logs, errors and Status.
	Issuer string
	// DiscoveryURL is an OIDC discovery document whose jwks_uri is fetched.
	DiscoveryURL string
	// JWKSURL is fetched directly.
	JWKSURL string
	// File is a local JWKS file, polled and reloaded when it changes.
	File string
	// RefreshFloor and RefreshCeiling clamp the Cache-Control max-age of
	// the JWKS response; a response without max-age is refreshed after
	// RefreshFloor.
	RefreshFloor, RefreshCeiling time.Duration
	// StaleMaxAge is how long after FreshUntil the last good keys are still
	// served while every refresh fails.
	StaleMaxAge time.Duration
	// UnknownKIDInterval is the minimum time between two refetches caused by
	// a kid the cache does not know.
	UnknownKIDInterval time.Duration
	// FetchTimeout bounds each HTTP request.
	FetchTimeout time.Duration
}

// Options are the dependencies of a Cache; the zero value uses defaults.
type Options struct {
	// Client fetches discovery documents and JWKS (default: a client with
	// no overall timeout; each request is bounded by FetchTimeout).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives fetch failures and key changes (default: discard).
	Logger *slog.Logger
	// FilePollInterval is how often a File source is re-read (default 5s).
	FilePollInterval time.Duration
	// RetryMin is the first delay after a failed refresh; it doubles up to
	// RefreshFloor (default 1s).
	RetryMin time.Duration
	// OnFetch, when set, is called after every fetch attempt (metrics).
	OnFetch func(issuer string, err error, took time.Duration)
	// Tracer, when set, records a span per fetch: a child of the check
	// whose unknown kid triggered it, or a root span for a refresh.
	Tracer trace.Tracer
}

// Errors returned by Refetch.
var (
	// ErrUnavailable means the issuer's keys have never been loaded or are
	// stale beyond StaleMaxAge: an outage, not the caller's fault.
	ErrUnavailable = errors.New("keys unavailable")
	// ErrClosed means the cache was closed.
	ErrClosed = errors.New("key cache closed")
)

const maxNegativeKIDs = 4096

// Cache holds the keys of one issuer. Current is lock-free; everything else
// (refetch, status) takes a mutex that the verification hot path never does.
type Cache struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	snap atomic.Pointer[Snapshot]

	ctx    context.Context // lifetime: cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{}

	mu          sync.Mutex
	started     bool
	inflight    *fetchCall
	lastUnknown time.Time            // last refetch caused by an unknown kid
	negative    map[string]time.Time // unknown kid → until
	fileHash    [32]byte
	st          Status
}

type fetchCall struct {
	done chan struct{}
	err  error
	// parent is the span of the check that started the fetch, if any.
	parent trace.SpanContext
}

// Status is the health of one issuer's keys, for readiness and metrics.
type Status struct {
	Issuer string
	Source string
	// Ready is true once keys were loaded and validated at least once.
	Ready bool
	// Available is false when no keys may be served (never loaded, or stale
	// beyond StaleMaxAge).
	Available bool
	// Stale is true when the keys are past FreshUntil but still served.
	Stale               bool
	Keys                int
	LastSuccess         time.Time
	Age                 time.Duration // since LastSuccess
	LastError           string
	LastErrorAt         time.Time
	ConsecutiveFailures int
	Fetches             uint64 // attempts, successful or not
	UnknownKIDFetches   uint64 // attempts caused by an unknown kid
}

// New returns a cache for cfg. It does nothing until Start.
func New(cfg Config, opts Options) (*Cache, error) {
	if n := countSet(cfg.DiscoveryURL, cfg.JWKSURL, cfg.File); n != 1 {
		return nil, fmt.Errorf("issuer %q: want exactly one of discovery URL, JWKS URL and file, got %d", cfg.Issuer, n)
	}
	if cfg.RefreshFloor <= 0 || cfg.RefreshCeiling < cfg.RefreshFloor || cfg.FetchTimeout <= 0 || cfg.StaleMaxAge < 0 || cfg.UnknownKIDInterval < 0 {
		return nil, fmt.Errorf("issuer %q: invalid refresh settings", cfg.Issuer)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	// A copy, so the caller's client keeps its own redirect policy: key
	// fetches follow few redirects and never from https to http (a
	// downgrade would let anyone on the path serve keys).
	client := *opts.Client
	client.CheckRedirect = checkRedirect
	opts.Client = &client
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FilePollInterval <= 0 {
		opts.FilePollInterval = 5 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cfg: cfg, opts: opts, ctx: ctx, cancel: cancel,
		log:      opts.Logger.With("issuer", cfg.Issuer),
		ready:    make(chan struct{}),
		negative: map[string]time.Time{},
	}
	c.st.Issuer = cfg.Issuer
	c.st.Source = cfg.source()
	return c, nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

func (cfg Config) source() string {
	switch {
	case cfg.DiscoveryURL != "":
		return cfg.DiscoveryURL
	case cfg.JWKSURL != "":
		return cfg.JWKSURL
	}
	return cfg.File
}

// Start loads the keys in the background and keeps them fresh until ctx is
// done or Close is called. Calling it again does nothing.
func (c *Cache) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.ctx.Err() != nil {
		return
	}
	c.started = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		stop := context.AfterFunc(ctx, c.cancel)
		defer stop()
		c.loop()
	}()
}

// WaitReady blocks until the keys were loaded once, ctx is done, or the cache
// is closed; the error then carries the last fetch error.
func (c *Cache) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
	case <-c.ctx.Done():
	}
	st := c.Status()
	if st.LastError != "" {
		return fmt.Errorf("issuer %q: keys not ready: %w: %s", c.cfg.Issuer, ErrUnavailable, st.LastError)
	}
	return fmt.Errorf("issuer %q: keys not ready: %w: no fetch finished yet", c.cfg.Issuer, ErrUnavailable)
}

// Close stops the refresher and waits for in-flight fetches to end.
func (c *Cache) Close() {
	// Cancel under the mutex: Start and startFetchLocked check the context
	// and call wg.Add under it, so no Add can race with the Wait below.
	c.mu.Lock()
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
}

// Current returns the keys that may be served now, or nil when the issuer's
// keys are unavailable (never loaded, or stale beyond StaleMaxAge).
func (c *Cache) Current() *Snapshot {
	s := c.snap.Load()
	if s == nil || !s.usableAt(c.opts.Now()) {
		return nil
	}
	return s
}

// Refetch is called when a token names a kid the current keys do not have.
// It refetches the keys at most once per UnknownKIDInterval (concurrent
// callers share one fetch), remembers kids that stayed unknown, and returns
// the keys to retry with. It returns early with ctx's error when ctx ends
// first; the fetch itself goes on, bounded by FetchTimeout.
func (c *Cache) Refetch(ctx context.Context, kid string) (*Snapshot, error) {
	now := c.opts.Now()
	c.mu.Lock()
	if until, ok := c.negative[kid]; ok && now.Before(until) {
		c.mu.Unlock()
		return c.afterRefetch(kid)
	}
	call := c.inflight
	if call == nil {
		if !c.lastUnknown.IsZero() && now.Sub(c.lastUnknown) < c.cfg.UnknownKIDInterval {
			c.mu.Unlock()
			return c.afterRefetch(kid)
		}
		c.lastUnknown = now
		c.st.UnknownKIDFetches++
		var parent trace.SpanContext
		if c.opts.Tracer != nil {
			parent = trace.SpanContextFromContext(ctx)
		}
		call = c.startFetchLocked(parent)
	}
	c.mu.Unlock()
	if call == nil {
		return nil, ErrClosed
	}
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the keys of issuer %q: %w", c.cfg.Issuer, ctx.Err())
	}
	return c.afterRefetch(kid)
}

// afterRefetch returns the keys to retry kid with. While the issuer's
// refreshes fail, a kid missing from the last good keys cannot be told
// apart from a rotation the cache could not see: that is reported as
// ErrUnavailable (an outage), not as an unknown key. Otherwise a missing
// kid is remembered in the negative cache.
func (c *Cache) afterRefetch(kid string) (*Snapshot, error) {
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	if _, ok := s.Key(kid); ok {
		return s, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.ConsecutiveFailures > 0 {
		return nil, fmt.Errorf("%w: refreshing the keys of issuer %q failed: %s", ErrUnavailable, c.cfg.Issuer, c.st.LastError)
	}
	if until, ok := c.negative[kid]; !ok || !c.opts.Now().Before(until) {
		c.rememberUnknown(kid, c.opts.Now())
	}
	return s, nil
}

func (c *Cache) current() (*Snapshot, error) {
	if s := c.Current(); s != nil {
		return s, nil
	}
	return nil, ErrUnavailable
}

// rememberUnknown adds kid to the negative cache; c.mu is held.
func (c *Cache) rememberUnknown(kid string, now time.Time) {
	if len(c.negative) >= maxNegativeKIDs {
		for k, until := range c.negative {
			if !now.Before(until) {
				delete(c.negative, k)
			}
		}
		if len(c.negative) >= maxNegativeKIDs {
			// A flood of random kids: forget them all. Fetches stay
			// bounded by UnknownKIDInterval regardless.
			clear(c.negative)
		}
	}
	c.negative[kid] = now.Add(c.cfg.UnknownKIDInterval)
}

// startFetchLocked starts a fetch in the background (c.mu held) and returns
// its call, or nil when the cache is closed. Only one fetch runs at a time;
// parent is the span a new fetch's span descends from (invalid: a root).
func (c *Cache) startFetchLocked(parent trace.SpanContext) *fetchCall {
	if c.inflight != nil {
		return c.inflight
	}
	if c.ctx.Err() != nil {
		return nil
	}
	call := &fetchCall{done: make(chan struct{}), parent: parent}
	c.inflight = call
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		call.err = c.tracedFetch(call.parent)
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(call.done)
	}()
	return call
}

// fetch runs one fetch (sharing any in flight) and waits for it.
func (c *Cache) fetch() error {
	c.mu.Lock()
	call := c.startFetchLocked(trace.SpanContext{})
	c.mu.Unlock()
	if call == nil {
		return ErrClosed
	}
	select {
	case <-call.done:
		return call.err
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// tracedFetch is fetchOnce inside a span when a tracer is set.
func (c *Cache) tracedFetch(parent trace.SpanContext) error {
	if c.opts.Tracer == nil {
		return c.fetchOnce()
	}
	source := "jwks_url"
	switch {
	case c.cfg.File != "":
		source = "file"
	case c.cfg.DiscoveryURL != "":
		source = "discovery"
	}
	ctx := trace.ContextWithSpanContext(c.ctx, parent)
	_, span := c.opts.Tracer.Start(ctx, "ccauthz.jwks.fetch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("ccauthz.issuer", c.cfg.Issuer), attribute.String("ccauthz.jwks.source", source)))
	defer span.End()
	err := c.fetchOnce()
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// fetchOnce reads the source, validates it and swaps the snapshot.
func (c *Cache) fetchOnce() error {
	start := time.Now()
	keys, ttl, changed, err := c.read()
	took := time.Since(start)
	if c.opts.OnFetch != nil {
		c.opts.OnFetch(c.cfg.Issuer, err, took)
	}
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Fetches++
	if err != nil {
		c.st.LastError = err.Error()
		c.st.LastErrorAt = now
		c.st.ConsecutiveFailures++
		if c.ctx.Err() == nil {
			c.log.Warn("issuer keys refresh failed; serving the last good keys if any",
				"error", err, "consecutive_failures", c.st.ConsecutiveFailures)
		}
		return err
	}
	c.st.LastSuccess = now
	c.st.LastError = ""
	c.st.ConsecutiveFailures = 0
	prev := c.snap.Load()
	if !changed && prev != nil {
		return nil
	}
	s := newSnapshot(keys, prev)
	s.FetchedAt = now
	if ttl > 0 {
		s.FreshUntil = now.Add(ttl)
		s.UsableUntil = s.FreshUntil.Add(c.cfg.StaleMaxAge)
	}
	c.snap.Store(s)
	// The keys changed: a kid that was unknown may exist now.
	clear(c.negative)
	if prev == nil || !sameKeys(prev, s) {
		c.log.Info("issuer keys loaded", "keys", len(s.keys), "kids", kidList(s))
	}
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	return nil
}

func sameKeys(a, b *Snapshot) bool {
	if len(a.keys) != len(b.keys) {
		return false
	}
	for i := range a.keys {
		if a.keys[i] != b.keys[i] {
			return false
		}
	}
	return true
}

func kidList(s *Snapshot) []string {
	out := make([]string, len(s.keys))
	for i, k := range s.keys {
		out[i] = k.KID
	}
	return out
}

// loop keeps the keys fresh: a network source is refetched before it
// expires and retried with backoff on failure; a file is polled.
func (c *Cache) loop() {
	retry := c.opts.RetryMin
	for {
		err := c.fetch()
		if errors.Is(err, ErrClosed) || c.ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case c.cfg.File != "":
			wait = c.opts.FilePollInterval
		case err != nil:
			wait = retry
			retry = min(2*retry, c.cfg.RefreshFloor)
		default:
			retry = c.opts.RetryMin
			s := c.snap.Load()
			// Refresh at 80-90% of the lifetime: before the keys go stale,
			// and spread so that replicas do not refetch in step.
			ttl := s.FreshUntil.Sub(s.FetchedAt)
			wait = ttl*8/10 + rand.N(ttl/10+1)
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Status returns the current health of the issuer's keys.
func (c *Cache) Status() Status {
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	now := c.opts.Now()
	if s := c.snap.Load(); s != nil {
		st.Ready = true
		st.Keys = len(s.keys)
		st.Available = s.usableAt(now)
		st.Stale = !s.FreshUntil.IsZero() && !now.Before(s.FreshUntil)
	}
	if !st.LastSuccess.IsZero() {
		st.Age = now.Sub(st.LastSuccess)
	}
	return st
}
