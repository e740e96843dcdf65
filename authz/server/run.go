package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Listeners are what Serve serves on. GRPC and Admin are required; HTTP
// (the HTTP checks) is optional.
type Listeners struct {
	GRPC, Admin, HTTP net.Listener
}

// Serve serves ext_authz, health and reflection on the gRPC listener, the
// HTTP checks on the HTTP listener (when set) and the admin endpoints on
// the admin listener until ctx is done, then shuts down in order: health
// NOT_SERVING (and /readyz 503), graceful stop of gRPC and the HTTP checks
// bounded by DrainTimeout (then a hard stop), admin listener last so
// /metrics stays scrapeable during the drain. It returns nil after a clean
// shutdown, or the first serve error.
func (s *Server) Serve(ctx context.Context, ls Listeners) error {
	grpcLis, adminLis := ls.GRPC, ls.Admin
	gs := grpc.NewServer(
		// Envoy may keep idle HTTP/2 connections alive with pings; grpc-go's
		// default (one ping per 5 min) would answer a tighter Envoy
		// connection_keepalive with GOAWAY and fail the checks in flight.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Checks run on long-lived stream workers instead of a fresh
		// goroutine per stream: OPA's evaluation recurses deeply, and on a
		// fresh 8 KiB stack every cold check paid runtime.newstack/copystack
		// (about a third of the CPU of a realistic run). grpc-go falls back
		// to a new goroutine when every worker is busy.
		grpc.NumStreamWorkers(streamWorkers()),
	)
	authv3.RegisterAuthorizationServer(gs, s)
	healthgrpc.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)

	admin := &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
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
		}
	}
	errc := make(chan error, 3)
	go func() { errc <- gs.Serve(grpcLis) }()
	serveHTTP := func(hs *http.Server, l net.Listener) {
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
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

	// Drain.
	s.draining.Store(true)
	s.health.Shutdown()
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
// /metrics (Prometheus text format from the server's own registry).
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
	return mux
}

// streamWorkers is the number of gRPC stream workers: enough that a check
// rarely finds them all busy (Envoy keeps many streams in flight per
// connection), few enough that their grown stacks stay small.
func streamWorkers() uint32 {
	return uint32(max(8, 4*runtime.GOMAXPROCS(0)))
}
