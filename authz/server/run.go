package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// MaxCheckRequestBytes bounds the part of a CheckRequest that is not the
// request body. Envoy never sends more than its header limit
// (max_request_headers_kb, 60 KiB by default), so 1 MiB leaves ample room.
// The gRPC server's receive limit is this plus the request body bound
// (request_body.max_bytes, Envoy's max_request_bytes): a whole body at the
// limit still fits, and no client can make the decoder allocate more. A
// larger message is refused by grpc-go (RESOURCE_EXHAUSTED) before Check.
const MaxCheckRequestBytes = 1 << 20

// maxRecvMsgSize is the gRPC receive limit: headers and the largest body.
func (s *Server) maxRecvMsgSize() int {
	return MaxCheckRequestBytes + s.opts.MaxRequestBodyBytes
}

// Listeners are what Serve serves on. GRPC and Admin are required; HTTP
// (the HTTP checks) is optional.
type Listeners struct {
	GRPC, Admin, HTTP net.Listener
	// TLS is each listener's TLS; the zero value serves plaintext.
	TLS ListenerTLS
}

// Serve serves ext_authz, health and (when enabled) reflection on the gRPC
// listener, the HTTP checks on the HTTP listener (when set) and the admin
// endpoints on the admin listener, each over TLS when ls.TLS says so, until
// ctx is done, then shuts down in order: health NOT_SERVING (and /readyz
// 503) with checks still answered for DrainDelay, graceful stop of gRPC and
// the HTTP checks bounded by DrainTimeout (then a hard stop), admin listener
// last so /metrics stays scrapeable during the drain. It returns nil after a clean
// shutdown, or the first serve error.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	grpcLis, adminLis := ls.GRPC, ls.Admin
	gs := grpc.NewServer(s.grpcServerOptions(ls.TLS.GRPC)...)
	// Check answers with bytes it encoded itself (wire.go).
	gs.RegisterService(&authorizationService, s)
	healthgrpc.RegisterHealthServer(gs, s.health)
	if s.opts.GRPC.Reflection {
		reflection.Register(gs)
	}
	if s.deps.API != nil {
		s.deps.API.RegisterGRPC(gs)
	}

	admin := s.adminServer(ls.TLS.Admin)
	var checks *http.Server
	if ls.HTTP != nil {
		o := s.opts.HTTP
		checks = &http.Server{
			Handler:           s.HTTPHandler(),
			ReadHeaderTimeout: o.ReadTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn),
			TLSConfig:         cloneTLS(ls.TLS.HTTP),
		}
	}
	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(grpcLis) }()
	serveHTTP := func(hs *http.Server, l net.Listener) {
		serve := hs.Serve
		if hs.TLSConfig != nil {
			// The certificate comes from TLSConfig (per handshake), not files.
			serve = func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
		}
		if err := serve(l); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}
	go serveHTTP(admin, adminLis)
	httpAddr := ""
	if checks != nil {
		go serveHTTP(checks, ls.HTTP)
		httpAddr = ls.HTTP.Addr().String()
	}
	readinessDone := make(chan struct{})
	readinessCtx, stopReadiness := context.WithCancel(context.Background())
	go func() {
		defer close(readinessDone)
		t := time.NewTicker(s.opts.ReadinessInterval)
		defer t.Stop()
		for {
			select {
			case <-readinessCtx.Done():
				return
			case <-t.C:
				s.refreshReadiness()
				s.logSuppressed(s.denialLog.flush())
			}
		}
	}()
	s.deps.Logger.Info("serving", "grpc", grpcLis.Addr().String(), "admin", adminLis.Addr().String(),
		"http", httpAddr, "backends", s.snap.Load().Names(), "dry_run", s.opts.DryRun)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.deps.Logger.Error("listener failed", "error", serveErr)
	}

	// Drain: report NOT_SERVING first and keep answering checks for the
	// drain delay, so health-checking clients (Envoy, a Kubernetes Service
	// via /readyz) stop sending before the listeners close.
	s.draining.Store(true)
	s.health.Shutdown()
	if d := s.opts.DrainDelay; d > 0 && serveErr == nil {
		s.deps.Logger.Info("not serving; answering checks during the drain delay", "drain_delay", d.String())
		time.Sleep(d)
	}
	s.deps.Logger.Info("draining", "timeout", s.opts.DrainTimeout.String())
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	httpStopped := make(chan struct{})
	go func() {
		defer close(httpStopped)
		if checks == nil {
			return
		}
		if err := checks.Shutdown(drainCtx); err != nil {
			s.deps.Logger.Warn("drain timeout: closing HTTP checks in flight")
			_ = checks.Close()
		}
	}()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-drainCtx.Done():
		s.deps.Logger.Warn("drain timeout: stopping with checks in flight")
		gs.Stop()
		<-stopped
	}
	<-httpStopped
	cancelDrain()
	stopReadiness()
	<-readinessDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := admin.Shutdown(shutdownCtx); err != nil {
		_ = admin.Close()
	}
	s.deps.Logger.Info("stopped")
	return serveErr
}

// AdminHandler serves /healthz (the process is alive), /readyz (every
// backend ready and not draining: 200, else 503 with the reasons) and
// /metrics (Prometheus text format from the server's own registry),
// /debug/cache (each backend's decision cache stats, JSON),
// Deps.AdminRoutes, and /debug/pprof/ when Options.Admin.Pprof is on.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /debug/cache", s.cacheStats)
	if s.opts.Admin.Pprof {
		pprofRoutes(mux)
	}
	for pattern, h := range s.deps.AdminRoutes {
		mux.Handle(pattern, h)
	}
	if s.deps.API != nil {
		s.deps.API.AdminRoutes(mux)
	}
	return mux
}

// streamWorkersPerCPU is the number of gRPC stream workers per GOMAXPROCS,
// up to maxStreamWorkers.
const streamWorkersPerCPU = 32

// maxStreamWorkers caps the workers on a large machine: under load every
// worker runs checks in turn and so holds a stack reserveStack grew to
// 64 KiB (until the collector shrinks an idle one); 256 of them are 16 MiB,
// a sixteenth of the default memory limit, where 32 a core of 64 cores
// would be 128 MiB. A check that finds every worker busy runs on a fresh
// goroutine, as grpc-go does without workers.
const maxStreamWorkers = 256

// streamWorkers is the number of gRPC stream workers: as many as the checks
// a busy Envoy keeps in flight, so that a check rarely finds them all busy
// and runs on a fresh goroutine (whose stack reserveStack must grow from
// 2 KiB). With 4 a core, most checks of the realistic mix at capacity ran on
// fresh goroutines (docs/reliability.md "Stack growth"). An idle worker
// costs a parked goroutine; the collector shrinks its stack.
func streamWorkers() uint32 {
	return uint32(min(streamWorkersPerCPU*runtime.GOMAXPROCS(0), maxStreamWorkers))
}
