package assembly

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/ccauthz/ccauthz/authz/certs"
	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/server"
)

// GRPCOptions maps the config's grpc_server section to the server's options.
func GRPCOptions(g config.GRPCServer) server.GRPCOptions {
	return server.GRPCOptions{
		Reflection:            g.Reflection,
		MaxConcurrentStreams:  g.MaxConcurrentStreams,
		MaxConnectionAge:      g.MaxConnectionAge,
		MaxConnectionAgeGrace: g.MaxConnectionAgeGrace,
		KeepaliveMinTime:      g.KeepaliveMinTime,
		KeepaliveStrict:       !g.KeepalivePermitWithoutStream,
	}
}

// TLS loads each TLS listener's material: the listeners' TLS configs for
// Serve and the sources to watch (Server.WatchTLS). Listeners without a
// cert_file stay plaintext.
func TLS(t config.TLS) (server.ListenerTLS, []*certs.Source, error) {
	var out server.ListenerTLS
	var sources []*certs.Source
	var errs []error
	for _, l := range []struct {
		name string
		cfg  config.ListenerTLS
		dst  **tls.Config
	}{{"grpc", t.GRPC, &out.GRPC}, {"http", t.HTTP, &out.HTTP}, {"admin", t.Admin, &out.Admin}} {
		if !l.cfg.Enabled() {
			continue
		}
		src, err := certs.Load(t.Files(l.cfg))
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.%s: %w", l.name, err))
			continue
		}
		*l.dst = src.ServerConfig()
		sources = append(sources, src)
	}
	return out, sources, errors.Join(errs...)
}
