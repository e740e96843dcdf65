package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"

	"github.com/ccauthz/ccauthz/authz/ratelimit"

	"github.com/ccauthz/ccauthz/proto/envoy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// Options are the server's tunables (from the config's server section).
type Options struct {
	// CheckTimeout bounds one check; past it the check fails closed with
	// deadline_exceeded (503).
	CheckTimeout time.Duration
	// DrainTimeout bounds the graceful stop on shutdown; in-flight checks
	// still running then are cut.
	DrainTimeout time.Duration
	// DryRun puts every backend in dry-run mode.
	DryRun bool
	// AllowLogSampling is the fraction (0..1) of allowed checks that are
	// logged; denials are logged up to MaxDenialLogLines a second.
	AllowLogSampling float64
	// MaxDenialLogLines bounds the denial and fault lines of the decision
	// log a second (the rest are counted and summed up, loglimit.go). 0:
	// DefaultMaxDenialLogLines; negative: no bound.
	MaxDenialLogLines int
	// ReadinessInterval is how often backend readiness (keys fresh) is
	// re-evaluated for the health service and /readyz.
	ReadinessInterval time.Duration
	// HTTP tunes the HTTP check listener.
	HTTP HTTPOptions
	// RequestPath are the canonical path choices (config request_path);
	// nil is requestpath.Default(), what the shipped gateways do.
	RequestPath *requestpath.Options
	// GRPC tunes the gRPC listener; Admin the admin listener.
	GRPC  GRPCOptions
	Admin AdminOptions
	// DrainDelay is how long health reports NOT_SERVING, with checks still
	// answered, before the graceful stop begins. 0: stop at once.
	DrainDelay time.Duration
	// MaxRequestBodyBytes bounds the request body a check may give the
	// policy (Envoy with_request_body, the JSON API's body); a larger one
	// reaches the policy as too_large, undecoded. Default
	// envoy.DefaultMaxBodyBytes.
	MaxRequestBodyBytes int
	// Overload bounds the checks decided at once (load shedding).
	Overload OverloadOptions
}

func (o *Options) defaults() {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 2 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 15 * time.Second
	}
	if o.ReadinessInterval <= 0 {
		o.ReadinessInterval = time.Second
	}
	if o.MaxRequestBodyBytes <= 0 {
		o.MaxRequestBodyBytes = envoy.DefaultMaxBodyBytes
	}
	if o.MaxDenialLogLines == 0 {
		o.MaxDenialLogLines = DefaultMaxDenialLogLines
	}
	o.HTTP.defaults(o.CheckTimeout)
	if o.RequestPath == nil {
		d := requestpath.Default()
		o.RequestPath = &d
	}
	o.GRPC.defaults()
	o.Admin.defaults()
	o.Overload.defaults()
}

// DefaultMaxDenialLogLines is Options.MaxDenialLogLines' default
// (config logging.max_denials_per_second).
const DefaultMaxDenialLogLines = 100

// Deps are what a server is built from.
type Deps struct {
	Verifier Verifier
	Build    Builder
	Logger   *slog.Logger // decision and lifecycle logs (JSON)
	Metrics  *Metrics
	Now      Clock
	// RateLimiter is the embedded rate limiter; nil turns local rate
	// limiting off (Envoy and envoyproxy/ratelimit may still enforce).
	RateLimiter *ratelimit.Limiter
	// AdminRoutes are extra handlers on the admin listener, by ServeMux
	// pattern (the unit-primitive directory under /catalog/).
	AdminRoutes map[string]http.Handler
	// API is ccauthz's own API (ccauthz.v1), served beside the checks; nil
	// serves none.
	API APIServices
	// Tracer records a span per check with children for token
	// verification and policy evaluation; nil turns tracing off, and then
	// the check path makes no tracing call at all.
	Tracer trace.Tracer
}

// Server answers ext_authz checks from an immutable snapshot that reloads
// swap atomically.
type Server struct {
	deps      Deps
	opts      Options
	responder *envoy.Responder
	snap      atomic.Pointer[Snapshot]
	metrics   *Metrics
	health    *health.Server
	overload  *overload
	denialLog *denialLog

	idPrefix string
	seq      atomic.Uint64
	// wires are the gRPC listener's decoded requests with their decoder's
	// scratch space, reused across checks (wire.go).
	wires sync.Pool

	reloadMu sync.Mutex // serialises reloads; never taken by checks
	// reloadReqs counts reload requests; reloadDone is the count covered by
	// the last finished reload (under reloadMu) and reloadErr its result, so
	// a burst of requests waiting on reloadMu is answered by one build.
	reloadReqs atomic.Uint64
	reloadDone uint64
	reloadErr  error
	// retired accumulates the decision-cache counters of policies a reload
	// replaced, per backend (under reloadMu for writes, retiredMu for reads),
	// so the exported counters never go backwards.
	retiredMu       sync.Mutex
	retired         map[string]retiredCounters
	unknownCounters *backendCounters
	draining        atomic.Bool
	readyMu         sync.Mutex
	notReady        map[string]string // backend → why not ready
}

// New builds the first snapshot and returns a server ready to Serve. A
// failed first build is an error: there is no last good snapshot to keep.
func New(ctx context.Context, deps Deps, opts Options) (*Server, error) {
	if deps.Verifier == nil || deps.Build == nil || deps.Logger == nil || deps.Metrics == nil {
		return nil, errors.New("server: Verifier, Build, Logger and Metrics are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	opts.defaults()
	if err := opts.HTTP.validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := opts.RequestPath.Validate(); err != nil {
		return nil, fmt.Errorf("server: request path: %w", err)
	}
	if opts.AllowLogSampling < 0 || opts.AllowLogSampling > 1 {
		return nil, fmt.Errorf("server: allow log sampling %v is not within 0..1", opts.AllowLogSampling)
	}
	var id [8]byte
	_, err := rand.Read(id[:])
	if err != nil {
		return nil, fmt.Errorf("server: decision id prefix: %w", err)
	}
	s := &Server{
		deps: deps, opts: opts, metrics: deps.Metrics,
		responder: envoy.NewResponder(knownReasons...),
		health:    health.NewServer(),
		idPrefix:  hex.EncodeToString(id[:]) + "-",
		notReady:  map[string]string{},
	}
	s.unknownCounters = s.metrics.forBackend(unknownBackendLabel, opts.DryRun)
	if s.overload, err = newOverload(opts.Overload, s.metrics.Registry); err != nil {
		return nil, fmt.Errorf("server: overload metrics: %w", err)
	}
	if s.denialLog, err = newDenialLog(opts.MaxDenialLogLines, s.metrics.Registry); err != nil {
		return nil, fmt.Errorf("server: decision log metrics: %w", err)
	}
	if err := s.metrics.Registry.Register(&cacheCollector{srv: s}); err != nil {
		return nil, fmt.Errorf("server: cache metrics: %w", err)
	}
	snap, err := deps.Build(ctx)
	if err == nil {
		err = s.prepare(snap)
	}
	if err != nil {
		return nil, fmt.Errorf("server: initial build: %w", err)
	}
	s.snap.Store(snap)
	s.metrics.observeReload(true, deps.Now())
	s.refreshReadiness()
	return s, nil
}

// prepare attaches the shared metadata values and metric counters to every
// backend not prepared yet (a reload may keep backends of the serving
// snapshot; those are left as they are).
func (s *Server) prepare(snap *Snapshot) error {
	if snap == nil {
		return errors.New("builder returned no snapshot")
	}
	for _, name := range snap.Names() {
		b := snap.backends[name]
		if b.meta != nil && b.counters != nil {
			// A backend the builder kept from the serving snapshot (same
			// compiled policy, so the same metadata and counters): checks
			// read these fields concurrently, so they are not written again.
			continue
		}
		b.meta = envoy.NewBackendMeta(b.Name, b.Decider.Revision())
		b.meta.GRPC = b.GRPC
		b.counters = s.metrics.forBackend(b.Name, s.opts.DryRun || b.DryRun)
	}
	return nil
}

// Snapshot returns the snapshot currently serving.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Reload builds a new snapshot aside and swaps it in. On failure the
// current snapshot keeps serving; the failure is logged and counted.
//
// Reloads coalesce: a request that arrives while another reload runs waits,
// and if a reload that started after it finished meanwhile (so it read the
// files as they were at the request or later), it returns that reload's
// result instead of building again. When the builder reports nothing
// changed (it returns the snapshot that is serving), nothing is swapped and
// every policy keeps its warm decision cache.
func (s *Server) Reload(ctx context.Context, why string) error {
	req := s.reloadReqs.Add(1)
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.reloadDone >= req {
		s.metrics.reloads.WithLabelValues("coalesced").Inc()
		return s.reloadErr
	}
	covers := s.reloadReqs.Load()
	err := s.reload(ctx, why)
	s.reloadDone, s.reloadErr = covers, err
	return err
}

func (s *Server) reload(ctx context.Context, why string) error {
	current := s.snap.Load()
	snap, err := s.deps.Build(ctx)
	if err == nil && snap == current {
		s.metrics.observeUnchanged(s.deps.Now())
		s.deps.Logger.Info("reload: inputs unchanged; nothing rebuilt", "trigger", why)
		s.refreshReadiness()
		return nil
	}
	if err == nil {
		err = s.prepare(snap)
	}
	if err != nil {
		s.metrics.observeReload(false, s.deps.Now())
		old := s.snap.Load()
		s.deps.Logger.Error("reload failed; keeping the last good snapshot",
			"trigger", why, "error", err.Error(), "serving_since", old.Built.UTC().Format(time.RFC3339))
		return err
	}
	s.retire(current, snap)
	old := s.snap.Swap(snap)
	s.metrics.observeReload(true, s.deps.Now())
	attrs := []any{"trigger", why, "backends", snap.Names()}
	for _, name := range snap.Names() {
		b := snap.backends[name]
		attrs = append(attrs, "revision."+name, b.meta.Revision)
		if ob, ok := old.backends[name]; ok && ob.meta.Revision != b.meta.Revision {
			attrs = append(attrs, "previous_revision."+name, ob.meta.Revision)
		}
		if ob, ok := old.backends[name]; ok && ob.Decider == b.Decider {
			attrs = append(attrs, "kept."+name, true)
		}
	}
	s.deps.Logger.Info("reloaded", attrs...)
	s.refreshReadiness()
	return nil
}

// nextDecisionID returns a process-unique decision id: a random per-process
// prefix and a counter (cheap, and unique across restarts and replicas).
func (s *Server) nextDecisionID() string {
	n := s.seq.Add(1)
	var buf [40]byte
	b := append(buf[:0], s.idPrefix...)
	b = strconv.AppendUint(b, n, 36)
	return string(b)
}

func (s *Server) sampleAllow() bool {
	switch r := s.opts.AllowLogSampling; {
	case r >= 1:
		return true
	case r <= 0:
		return false
	default:
		return mrand.Float64() < r
	}
}

// retiredCounters are decision-cache counters of replaced policies.
type retiredCounters struct{ hits, misses uint64 }

// retire adds the counters of every policy in old that next does not keep to
// the backend's retired counters.
func (s *Server) retire(old, next *Snapshot) {
	if old == nil {
		return
	}
	s.retiredMu.Lock()
	defer s.retiredMu.Unlock()
	if s.retired == nil {
		s.retired = map[string]retiredCounters{}
	}
	for name, ob := range old.backends {
		if nb, ok := next.backends[name]; ok && nb.Decider == ob.Decider {
			continue
		}
		d, ok := ob.Decider.(decisionCacheStatser)
		if !ok {
			continue
		}
		st := d.Stats()
		r := s.retired[name]
		r.hits += st.Hits
		r.misses += st.Misses
		s.retired[name] = r
	}
}

// retiredFor returns the retired counters of a backend.
func (s *Server) retiredFor(name string) retiredCounters {
	s.retiredMu.Lock()
	defer s.retiredMu.Unlock()
	return s.retired[name]
}
