package assembly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ccauthz/ccauthz/authz/api"
	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/ratelimit"
	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/authz/tracing"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/catalog/site"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Deps are the process-level dependencies.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
	Build  server.BuildInfo
}

// Assembled is a server with the verifier and tracer provider it owns.
type Assembled struct {
	Server   *server.Server
	Verifier *token.Verifier
	Config   *config.Config
	tracing  *tracing.Provider
}

// traceFlushTimeout bounds the flush of queued spans on Close.
const traceFlushTimeout = 5 * time.Second

// Close stops the verifier's key refreshers, then flushes and stops the
// span exporter (if tracing is on).
func (a *Assembled) Close() {
	a.Verifier.Close()
	_ = a.tracing.Shutdown(traceFlushTimeout)
}

// New builds the verifier, starts its key caches (bound to ctx), builds the
// first snapshot and the server. It cleans up on partial failure.
func New(ctx context.Context, cfg *config.Config, deps Deps) (*Assembled, error) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	tp, err := tracing.New(ctx, cfg.Tracing, deps.Build.Version)
	if err != nil {
		return nil, err
	}
	fetches := &fetchCounts{failures: map[string]uint64{}}
	ver, err := token.NewVerifier(cfg.Issuers, token.Options{
		Tracer:       tp.Tracer(),
		Now:          deps.Now,
		Logger:       deps.Logger,
		CacheEntries: cfg.Caches.Tokens,
		CacheBytes:   cfg.Caches.TokenBytes,
		ClockSkew:    cfg.Tokens.ClockSkew,
		Metrics:      token.Metrics{KeyFetch: fetches.observe},
	})
	if err != nil {
		_ = tp.Shutdown(traceFlushTimeout)
		return nil, err
	}
	ver.Start(ctx)
	metrics := server.NewMetrics(deps.Build, &stats{ver: ver, fetches: fetches}, deps.Now)
	build := Builder(cfg, ver, deps.Now)
	var limiter *ratelimit.Limiter
	if cfg.RateLimit.Local {
		limiter = ratelimit.NewLimiter(cfg.RateLimit.MaxBuckets, deps.Now)
		metrics.Registry.MustRegister(limiter.Collectors()...)
	}
	dir, err := site.New()
	if err != nil {
		ver.Close()
		return nil, err
	}
	// The directory reads the serving snapshot on every request, so it
	// follows reloads; srv is set before the admin listener serves.
	var srv *server.Server
	// The API reads the catalog of the snapshot being served.
	apiSvc := &api.Services{
		Catalog: api.NewCatalogService(func() *catalog.Catalog {
			if srv == nil || srv.Snapshot() == nil {
				return nil
			}
			return srv.Snapshot().Catalog
		}, deps.Now),
		Decision: api.NewDecisionService(func() api.Explainer {
			if srv == nil || srv.Snapshot() == nil {
				return nil
			}
			return srv.Explain
		}),
		GRPC:  apiOn(cfg.API.Serve, cfg.Listeners.GRPC),
		Admin: apiOn(cfg.API.Serve, cfg.Listeners.Admin),
	}
	directory := dir.Handler(func() (site.Source, error) { return DirectorySource(srv.Snapshot()) }, deps.Now, deps.Logger)
	srv, err = server.New(ctx, server.Deps{
		Verifier: ver, Build: build, Logger: deps.Logger, Metrics: metrics, Now: deps.Now,
		RateLimiter: limiter, API: apiSvc, Tracer: tp.Tracer(),
		AdminRoutes: map[string]http.Handler{DirectoryPath: http.StripPrefix(strings.TrimSuffix(DirectoryPath, "/"), directory)},
	}, server.Options{
		CheckTimeout:        cfg.CheckTimeout,
		DrainTimeout:        cfg.DrainTimeout,
		DryRun:              cfg.DryRun,
		AllowLogSampling:    cfg.Logging.AllowSampleRate,
		MaxDenialLogLines:   cfg.Logging.MaxDenialsPerSecond,
		MaxRequestBodyBytes: cfg.RequestBody.MaxBytes,
		HTTP: server.HTTPOptions{
			EnvoyPathPrefix: cfg.HTTPCheck.EnvoyPathPrefix,
			MaxHeaderBytes:  cfg.HTTPCheck.MaxHeaderBytes,
			MaxBodyBytes:    int64(cfg.HTTPCheck.MaxBodyBytes),
			ReadTimeout:     cfg.HTTPCheck.ReadTimeout,
			WriteTimeout:    cfg.HTTPCheck.WriteTimeout,
			IdleTimeout:     cfg.HTTPCheck.IdleTimeout,
		},
		RequestPath: new(cfg.RequestPath.Options()),
		GRPC:        GRPCOptions(cfg.GRPCServer),
		Admin:       server.AdminOptions(cfg.AdminServer),
		DrainDelay:  cfg.DrainDelay,
		Overload: server.OverloadOptions{MaxInFlight: cfg.Overload.MaxInFlight, MinDeadline: cfg.Overload.MinDeadline,
			MaxQueueWait: cfg.Overload.MaxQueueWait, RefuseStreams: cfg.Overload.RefuseStreams},
	})
	if err != nil {
		ver.Close()
		_ = tp.Shutdown(traceFlushTimeout)
		return nil, err
	}
	return &Assembled{Server: srv, Verifier: ver, Config: cfg, tracing: tp}, nil
}

// Builder returns the snapshot builder for cfg: it loads the catalog and
// every manifest, compiles every backend's policy and returns the snapshot,
// or every error at once. Nothing is swapped until all of it succeeded.
//
// A reload keeps what did not change: a backend whose inputs (catalog,
// manifest and extra Rego, by policy.SourceDigest) are unchanged keeps its
// compiled policy and warm decision cache — the Backend value itself — and
// when no backend changed the previous snapshot is returned as is, which the
// server takes as "nothing to swap".
func Builder(cfg *config.Config, ver *token.Verifier, now func() time.Time) server.Builder {
	var (
		mu   sync.Mutex // builds are serialised by the server; this guards direct callers
		kept = map[string]keptBackend{}
		last *server.Snapshot
	)
	return func(ctx context.Context) (*server.Snapshot, error) {
		mu.Lock()
		defer mu.Unlock()
		cat, err := LoadCatalog(cfg.Catalog)
		if err != nil {
			return nil, err
		}
		var errs []error
		backends := make([]*server.Backend, 0, len(cfg.Backends))
		next := make(map[string]keptBackend, len(cfg.Backends))
		changed := last == nil
		for _, bc := range cfg.Backends {
			b, digest, err := buildBackend(cat, bc, cfg, ver, kept[bc.Name])
			if err != nil {
				errs = append(errs, fmt.Errorf("backend %s: %w", bc.Name, err))
				continue
			}
			if b != kept[bc.Name].backend {
				changed = true
			}
			next[bc.Name] = keptBackend{digest: digest, backend: b}
			backends = append(backends, b)
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if !changed {
			return last, nil
		}
		snap, err := server.NewSnapshot(backends, now())
		if err != nil {
			return nil, err
		}
		snap.Catalog = cat
		kept, last = next, snap
		return snap, nil
	}
}

// DirectoryPath is where the admin listener serves the unit-primitive
// directory.
const DirectoryPath = "/catalog/"

// DirectorySource is what the unit-primitive directory shows of a snapshot:
// its catalog and every backend's manifest.
func DirectorySource(snap *server.Snapshot) (site.Source, error) {
	if snap == nil || snap.Catalog == nil {
		return site.Source{}, errors.New("no catalog in the serving snapshot")
	}
	src := site.Source{Catalog: snap.Catalog}
	for _, name := range snap.Names() {
		if b, ok := snap.Backend(name); ok && b.Manifest != nil {
			src.Manifests = append(src.Manifests, b.Manifest)
		}
	}
	return src, nil
}

// keptBackend is a built backend and the digest of the inputs it was built
// from.
type keptBackend struct {
	digest  string
	backend *server.Backend
}

// buildBackend builds one backend, or returns prev.backend when its inputs'
// digest is unchanged.
func buildBackend(cat *catalog.Catalog, bc config.Backend, cfg *config.Config, ver *token.Verifier, prev keptBackend) (*server.Backend, string, error) {
	m, err := LoadManifest(bc.Manifest)
	if err != nil {
		return nil, "", err
	}
	opts := policy.BuildOptions{ExtraDir: bc.ExtraRego, CacheSize: cfg.Caches.Decisions,
		AllowBuiltins: bc.ExtraRegoBuiltins}
	digest, err := policy.SourceDigest(cat, m, opts)
	if err != nil {
		return nil, "", err
	}
	if prev.backend != nil && prev.digest == digest {
		return prev.backend, digest, nil
	}
	b, err := newBackend(cat, m, bc, cfg, ver, opts)
	return b, digest, err
}

func newBackend(cat *catalog.Catalog, m *manifest.Manifest, bc config.Backend, cfg *config.Config, ver *token.Verifier, opts policy.BuildOptions) (*server.Backend, error) {
	p, err := policy.Build(cat, m, opts)
	if err != nil {
		return nil, err
	}
	if p.Audience() == "" {
		return nil, fmt.Errorf("catalog backend %q has no jwt_aud", p.Backend())
	}
	var limits *ratelimit.Plan
	if cfg.RateLimit.Local {
		bound, err := m.Bind(cat)
		if err == nil {
			limits, err = ratelimit.NewPlan(bc.Name, bound)
		}
		if err != nil {
			return nil, err
		}
	}
	issuers := bc.Issuers
	if len(issuers) == 0 {
		for _, ic := range cfg.Issuers {
			issuers = append(issuers, ic.Name)
		}
	}
	return &server.Backend{
		Name:     bc.Name,
		Audience: p.Audience(),
		Hosts:    bc.Hosts,
		Issuers:  bc.Issuers,
		DryRun:   bc.DryRun,
		GRPC:     m.Protocol == manifest.ProtocolGRPC,
		Decider:  p,
		Ready:    keysReady(ver, issuers),
		// Limits for the embedded limiter (nil when it is off).
		RateLimits: limits,
		Manifest:   m,
	}, nil
}

// keysReady reports a backend ready when every issuer it accepts has keys
// that may be served (loaded, and not stale beyond stale_max_age). Keys
// past their refresh time but within stale_max_age keep it ready: an issuer
// outage must not take every replica out of rotation at once; the staleness
// shows in ccauthz_key_last_fetch_success_timestamp_seconds.
func keysReady(ver *token.Verifier, issuers []string) func() error {
	return func() error {
		var problems []string
		for _, st := range ver.Status() {
			if !slices.Contains(issuers, st.Issuer) {
				continue
			}
			if !st.Ready || !st.Available {
				why := "keys not loaded yet"
				if st.LastError != "" {
					why = st.LastError
				}
				problems = append(problems, fmt.Sprintf("issuer %s: %s", st.Issuer, why))
			}
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}
}

// apiOn reports whether the API is served on a listener at addr: always
// with "on", never with "off", and with "auto" only when addr is loopback
// (127.0.0.0/8, ::1 or localhost), so it is not exposed by default.
func apiOn(mode, addr string) bool {
	switch mode {
	case config.APIServeOn:
		return true
	case config.APIServeOff:
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadCatalog loads the catalog at path, or the bundled example for
// `embedded:example`.
func LoadCatalog(path string) (*catalog.Catalog, error) {
	if name, ok := strings.CutPrefix(path, config.EmbeddedPrefix); ok {
		if name != "example" {
			return nil, fmt.Errorf("unknown embedded catalog %q (known: example)", name)
		}
		return catalog.Example(), nil
	}
	if root, ok := pinnedRoot(path); ok {
		return catalog.LoadFS(os.DirFS(root), ".", path)
	}
	return catalog.Load(path)
}

// pinnedRoot resolves a catalog directory reached through a swapped link
// once, so one load reads one revision even if the link is swapped
// mid-load: a git-sync style root (`current → rev-N`) or a ConfigMap volume
// (`..data → ..2026_…`). ok is false for anything else.
func pinnedRoot(path string) (string, bool) {
	target := path
	if info, err := os.Lstat(filepath.Join(path, "..data")); err == nil && info.Mode()&os.ModeSymlink != 0 {
		target = filepath.Join(path, "..data")
	}
	real, err := filepath.EvalSymlinks(target)
	if err != nil || real == path {
		return "", false
	}
	if info, err := os.Stat(real); err != nil || !info.IsDir() {
		return "", false
	}
	return real, true
}

// LoadManifest loads the manifest at path, or a bundled example for
// `embedded:<name>`.
func LoadManifest(path string) (*manifest.Manifest, error) {
	if name, ok := strings.CutPrefix(path, config.EmbeddedPrefix); ok {
		return manifest.Example(name)
	}
	return manifest.Load(path)
}

// fetchCounts counts key fetch failures per issuer (the jwks status has
// attempts, not failures).
type fetchCounts struct {
	mu       sync.Mutex
	failures map[string]uint64
}

func (f *fetchCounts) observe(issuer string, err error, _ time.Duration) {
	if err == nil {
		return
	}
	f.mu.Lock()
	f.failures[issuer]++
	f.mu.Unlock()
}

// stats adapts the verifier to server.Stats.
type stats struct {
	ver     *token.Verifier
	fetches *fetchCounts
}

func (s *stats) TokenCache() (uint64, uint64) {
	st := s.ver.Stats()
	return st.Hits, st.Misses
}

func (s *stats) Issuers() []server.IssuerStats {
	statuses := s.ver.Status()
	out := make([]server.IssuerStats, 0, len(statuses))
	s.fetches.mu.Lock()
	defer s.fetches.mu.Unlock()
	for _, st := range statuses {
		out = append(out, issuerStats(st, s.fetches.failures[st.Issuer]))
	}
	return out
}

func issuerStats(st jwks.Status, failures uint64) server.IssuerStats {
	return server.IssuerStats{
		Name: st.Issuer, Fetches: st.Fetches, Failures: failures,
		LastSuccess: st.LastSuccess, Ready: st.Ready && st.Available,
	}
}
