package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/ccauthz/ccauthz/authz/certs"
)

// GRPCOptions tune the gRPC listener's transport (config grpc_server).
type GRPCOptions struct {
	// Reflection registers gRPC server reflection. Off unless asked for.
	Reflection bool
	// MaxConcurrentStreams bounds the checks in flight per connection.
	// Default 1000.
	MaxConcurrentStreams int
	// MaxConnectionAge sends GOAWAY to a connection this old so clients
	// reconnect and rebalance across replicas; 0 never.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long in-flight checks of an aged
	// connection may still run before it is closed. Default 30s.
	MaxConnectionAgeGrace time.Duration
	// KeepaliveMinTime is the shortest client ping interval tolerated.
	// Default 10s.
	KeepaliveMinTime time.Duration
	// KeepaliveStrict refuses pings on connections without a check in
	// flight (the zero value tolerates them, as Envoy sends them).
	KeepaliveStrict bool
}

func (o *GRPCOptions) defaults() {
	if o.MaxConcurrentStreams <= 0 {
		o.MaxConcurrentStreams = 1000
	}
	if o.MaxConnectionAgeGrace <= 0 {
		o.MaxConnectionAgeGrace = 30 * time.Second
	}
	if o.KeepaliveMinTime <= 0 {
		o.KeepaliveMinTime = 10 * time.Second
	}
}

// AdminOptions tune the admin listener (config admin_server).
type AdminOptions struct {
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request,
	// writing its answer and an idle keep-alive connection. Defaults 5s,
	// 10s, 60s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Pprof serves net/http/pprof under /debug/pprof/ (admin.go).
	Pprof bool
}

func (o *AdminOptions) defaults() {
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
}

// ListenerTLS is the TLS of each listener: a nil field serves plaintext.
// Each config must serve its certificate per handshake (certs.Source's
// ServerConfig does) so a reload reaches new connections.
type ListenerTLS struct {
	GRPC, HTTP, Admin *tls.Config
}

// grpcServerOptions are the gRPC server's transport options.
func (s *Server) grpcServerOptions(tlsConfig *tls.Config) []grpc.ServerOption {
	o := s.opts.GRPC
	streams := uint32(math.MaxUint32)
	if uint64(o.MaxConcurrentStreams) < math.MaxUint32 {
		streams = uint32(o.MaxConcurrentStreams)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.maxRecvMsgSize()),
		// A CheckRequest with non-UTF-8 strings is a 400, not INTERNAL.
		grpc.ForceServerCodecV2(newCheckCodec()),
		grpc.MaxConcurrentStreams(streams),
		// Envoy may keep idle HTTP/2 connections alive with pings; grpc-go's
		// default (one ping per 5 min) would answer a tighter Envoy
		// connection_keepalive with GOAWAY and fail the checks in flight.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: o.KeepaliveMinTime, PermitWithoutStream: !o.KeepaliveStrict,
		}),
		// Without an age limit Envoy keeps its first connections forever and
		// replicas added later get no checks.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: o.MaxConnectionAge, MaxConnectionAgeGrace: o.MaxConnectionAgeGrace,
		}),
		// Checks run on long-lived stream workers instead of a fresh
		// goroutine per stream: OPA's evaluation recurses deeply, and on a
		// fresh 8 KiB stack every cold check paid runtime.newstack/copystack
		// (about a third of the CPU of a realistic run). grpc-go falls back
		// to a new goroutine when every worker is busy.
		grpc.NumStreamWorkers(streamWorkers()),
	}
	if ov := s.overload; ov.maxQueueWait > 0 || ov.refuse {
		// Stamps each Check's arrival for the queue-wait shed and, with
		// overload.refuse_streams, refuses streams before they are decoded
		// (overload.go). Not installed otherwise: it costs an allocation a
		// check.
		opts = append(opts, grpc.InTapHandle(s.tapStream))
	}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	return opts
}

// adminServer is the admin listener's HTTP server.
func (s *Server) adminServer(tlsConfig *tls.Config) *http.Server {
	o := s.opts.Admin
	return &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: o.ReadTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		TLSConfig:         cloneTLS(tlsConfig),
		ErrorLog:          slog.NewLogLogger(s.deps.Logger.Handler(), slog.LevelWarn),
	}
}

// cloneTLS gives each server its own copy: net/http adds its ALPN
// protocols to the config it is given, so listeners must not share one.
func cloneTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	return c.Clone()
}

// WatchTLS re-reads the sources' files when they change (polled every
// interval, settled for debounce, as Watch does) and logs each rotation or
// failure; a failed reload keeps the last good material. It returns when ctx
// is done.
func (s *Server) WatchTLS(ctx context.Context, sources []*certs.Source, interval, debounce time.Duration) {
	var paths []string
	for _, src := range sources {
		paths = append(paths, src.Files().Paths()...)
	}
	WatchFiles(ctx, paths, interval, debounce, func() { s.ReloadTLS(sources) })
}

// ReloadTLS re-reads every source's files now (SIGHUP, or WatchTLS on a
// change) and logs each outcome; a source that fails keeps its last good
// material.
func (s *Server) ReloadTLS(sources []*certs.Source) {
	for _, src := range sources {
		f := src.Files()
		if err := src.Reload(); err != nil {
			s.deps.Logger.Error("TLS reload failed; keeping the last good certificate", "cert_file", f.CertFile, "error", err.Error())
			continue
		}
		leaf := src.Leaf()
		s.deps.Logger.Info("TLS material reloaded", "cert_file", f.CertFile,
			"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}
