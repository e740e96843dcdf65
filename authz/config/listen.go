package config

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/authz/certs"
	"github.com/ccauthz/ccauthz/catalog"
)

// Listener defaults. They are the values docs/configuration.md lists.
const (
	DefaultTLSMinVersion          = "1.2"
	DefaultMaxConcurrentStreams   = 1000
	DefaultMaxConnectionAge       = 10 * time.Minute
	DefaultMaxConnectionAgeGrace  = 30 * time.Second
	DefaultKeepaliveMinTime       = 10 * time.Second
	DefaultAdminReadTimeout       = 5 * time.Second
	DefaultAdminWriteTimeout      = 10 * time.Second
	DefaultAdminIdleTimeout       = 60 * time.Second
	DefaultDrainDelay             = time.Duration(0)
	defaultKeepalivePermitNoCalls = true
)

var (
	tlsFields         = []string{"min_version", "grpc", "http", "admin"}
	listenerTLSFields = []string{"cert_file", "key_file", "client_ca_file"}
	grpcServerFields  = []string{"reflection", "max_concurrent_streams", "max_connection_age", "max_connection_age_grace", "keepalive_min_time", "keepalive_permit_without_stream"}
	adminServerFields = []string{"read_timeout", "write_timeout", "idle_timeout", "pprof"}
)

// TLS configures TLS on the listeners. A listener whose block has no
// cert_file serves plaintext (the default: loopback development).
type TLS struct {
	// MinVersion is the lowest TLS version accepted on every TLS listener:
	// "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// GRPC is the gRPC listener's TLS (ext_authz, health, reflection).
	GRPC ListenerTLS `yaml:"grpc"`
	// HTTP is the HTTP check listener's TLS.
	HTTP ListenerTLS `yaml:"http"`
	// Admin is the admin listener's TLS (/healthz, /readyz, /metrics).
	Admin ListenerTLS `yaml:"admin"`
}

// ListenerTLS is one listener's TLS material. The files are re-read when
// they change (a rotated Secret, a renewed certificate): new connections get
// the new certificate, open ones keep theirs.
type ListenerTLS struct {
	// CertFile is the PEM certificate chain served (leaf first). Setting
	// it turns TLS on for the listener; key_file is then required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of cert_file.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, turns on mTLS: clients must present a
	// certificate signed by one of the PEM CA certificates in it.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listener serves TLS.
func (l ListenerTLS) Enabled() bool { return l.CertFile != "" }

// Files is the listener's material for the certs package (min_version
// applied).
func (t TLS) Files(l ListenerTLS) certs.Files {
	v := uint16(tls.VersionTLS12)
	if t.MinVersion == "1.3" {
		v = tls.VersionTLS13
	}
	return certs.Files{CertFile: l.CertFile, KeyFile: l.KeyFile, ClientCAFile: l.ClientCAFile, MinVersion: v}
}

// Paths are the TLS files of every listener (watched and reloaded).
func (t TLS) Paths() []string {
	var out []string
	for _, l := range []ListenerTLS{t.GRPC, t.HTTP, t.Admin} {
		if l.Enabled() {
			out = append(out, t.Files(l).Paths()...)
		}
	}
	return out
}

// GRPCServer tunes the gRPC listener's transport.
type GRPCServer struct {
	// Reflection serves gRPC server reflection (what grpcurl uses to find
	// the services). Default false: it tells anyone who can connect what
	// the server offers. The embedded default of `ccauthz serve` turns it
	// on so the printed grpcurl commands work.
	Reflection bool `yaml:"reflection"`
	// MaxConcurrentStreams bounds the checks in flight on one HTTP/2
	// connection, so one client cannot queue unbounded work. Default 1000.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxConnectionAge closes (GOAWAY) a connection after this long, so
	// clients reconnect and rebalance across replicas after a scale-up.
	// Default 10m; 0s turns it off.
	MaxConnectionAge time.Duration `yaml:"max_connection_age"`
	// MaxConnectionAgeGrace is how long checks in flight on an aged
	// connection may still take before it is closed. Default 30s.
	MaxConnectionAgeGrace time.Duration `yaml:"max_connection_age_grace"`
	// KeepaliveMinTime is the shortest keepalive ping interval a client may
	// use; pinging more often gets GOAWAY. Default 10s (Envoy's
	// connection_keepalive must not be tighter).
	KeepaliveMinTime time.Duration `yaml:"keepalive_min_time"`
	// KeepalivePermitWithoutStream allows keepalive pings on connections
	// with no check in flight (Envoy keeps idle connections alive).
	// Default true.
	KeepalivePermitWithoutStream bool `yaml:"keepalive_permit_without_stream"`
}

// AdminServer tunes the admin listener.
type AdminServer struct {
	// ReadTimeout bounds reading one request. Default 5s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from its headers read to its answer
	// written (a /metrics scrape included). Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Pprof serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the admin listener, for profiling a running server.
	// Off by default: a profile shows the code and costs CPU while it runs,
	// so it is only for an admin listener reachable by operators (the
	// default, loopback). A CPU profile must be shorter than write_timeout.
	Pprof bool `yaml:"pprof"`
}

// defaultListen fills the listener sections' defaults.
func defaultListen(c *Config) {
	c.TLS.MinVersion = DefaultTLSMinVersion
	c.GRPCServer = GRPCServer{
		MaxConcurrentStreams:         DefaultMaxConcurrentStreams,
		MaxConnectionAge:             DefaultMaxConnectionAge,
		MaxConnectionAgeGrace:        DefaultMaxConnectionAgeGrace,
		KeepaliveMinTime:             DefaultKeepaliveMinTime,
		KeepalivePermitWithoutStream: defaultKeepalivePermitNoCalls,
	}
	c.AdminServer = AdminServer{ReadTimeout: DefaultAdminReadTimeout, WriteTimeout: DefaultAdminWriteTimeout, IdleTimeout: DefaultAdminIdleTimeout}
	c.DrainDelay = DefaultDrainDelay
}

// decodeListen decodes tls, grpc_server, admin_server and drain_delay.
// TLS files are resolved against dir and read, so an unreadable file or a
// key that does not match its certificate is reported at its key.
func decodeListen(r catalog.NodeReader, f map[string]*yaml.Node, dir string, cfg *Config) {
	if tf := r.Fields(f["tls"], "tls", tlsFields, nil); tf != nil {
		if v, ok := r.String(tf["min_version"], "min_version"); ok {
			if v != "1.2" && v != "1.3" {
				r.Errorf(tf["min_version"], "field \"min_version\" must be \"1.2\" or \"1.3\", got %q", v)
			}
			cfg.TLS.MinVersion = v
		}
		for _, l := range []struct {
			name string
			dst  *ListenerTLS
		}{{"grpc", &cfg.TLS.GRPC}, {"http", &cfg.TLS.HTTP}, {"admin", &cfg.TLS.Admin}} {
			decodeListenerTLS(r, tf[l.name], l.name, dir, cfg.TLS, l.dst)
		}
	}
	if gf := r.Fields(f["grpc_server"], "grpc_server", grpcServerFields, nil); gf != nil {
		g := &cfg.GRPCServer
		if v, ok := r.Bool(gf["reflection"], "reflection"); ok {
			g.Reflection = v
		}
		if v, ok := r.Int(gf["max_concurrent_streams"], "max_concurrent_streams"); ok {
			if v < 1 {
				r.Errorf(gf["max_concurrent_streams"], "field \"max_concurrent_streams\" must be positive, got %d", v)
			}
			g.MaxConcurrentStreams = v
		}
		nonNegativeDuration(r, gf["max_connection_age"], "max_connection_age", &g.MaxConnectionAge)
		positiveDuration(r, gf["max_connection_age_grace"], "max_connection_age_grace", &g.MaxConnectionAgeGrace)
		positiveDuration(r, gf["keepalive_min_time"], "keepalive_min_time", &g.KeepaliveMinTime)
		if v, ok := r.Bool(gf["keepalive_permit_without_stream"], "keepalive_permit_without_stream"); ok {
			g.KeepalivePermitWithoutStream = v
		}
	}
	if af := r.Fields(f["admin_server"], "admin_server", adminServerFields, nil); af != nil {
		positiveDuration(r, af["read_timeout"], "read_timeout", &cfg.AdminServer.ReadTimeout)
		positiveDuration(r, af["write_timeout"], "write_timeout", &cfg.AdminServer.WriteTimeout)
		positiveDuration(r, af["idle_timeout"], "idle_timeout", &cfg.AdminServer.IdleTimeout)
		if v, ok := r.Bool(af["pprof"], "pprof"); ok {
			cfg.AdminServer.Pprof = v
		}
	}
	nonNegativeDuration(r, f["drain_delay"], "drain_delay", &cfg.DrainDelay)
}

func decodeListenerTLS(r catalog.NodeReader, n *yaml.Node, name, dir string, t TLS, dst *ListenerTLS) {
	lf := r.Fields(n, "tls."+name, listenerTLSFields, nil)
	if lf == nil {
		return
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	files := map[string]*string{"cert_file": &dst.CertFile, "key_file": &dst.KeyFile, "client_ca_file": &dst.ClientCAFile}
	for field, p := range files {
		if v, ok := r.String(lf[field], field); ok {
			if v == "" {
				r.Errorf(lf[field], "field %q must not be empty", field)
			}
			*p = abs(v)
		}
	}
	switch {
	case lf["cert_file"] == nil && lf["key_file"] == nil && lf["client_ca_file"] == nil:
		return
	case lf["cert_file"] == nil:
		r.Errorf(n, "missing required field \"cert_file\" in tls.%s", name)
		return
	case lf["key_file"] == nil:
		r.Errorf(n, "missing required field \"key_file\" in tls.%s", name)
		return
	case dst.CertFile == "" || dst.KeyFile == "":
		return // already reported
	}
	if err := certs.Check(t.Files(*dst)); err != nil {
		var ce *certs.Error
		if errors.As(err, &ce) && lf[ce.Field] != nil {
			r.Errorf(lf[ce.Field], "field %q: %s: %v", ce.Field, ce.File, ce.Err)
			return
		}
		r.Errorf(n, "tls.%s: %v", name, err)
	}
}

func nonNegativeDuration(r catalog.NodeReader, n *yaml.Node, field string, dst *time.Duration) {
	if v, ok := r.Duration(n, field); ok {
		if v < 0 {
			r.Errorf(n, "field %q must not be negative, got %s", field, v)
		}
		*dst = v
	}
}
