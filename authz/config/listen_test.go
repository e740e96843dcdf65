package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/certs/certstest"
	"github.com/ccauthz/ccauthz/catalog"
)

func TestDecodeListen(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	pair := ca.Server(t, dir, "tls")
	file := filepath.Join(dir, "c.yaml")
	cfg, err := Decode(file, []byte(base+`tls:
  min_version: "1.3"
  grpc: {cert_file: tls.crt, key_file: tls.key, client_ca_file: ca.crt}
  admin: {cert_file: `+pair.CertFile+`, key_file: `+pair.KeyFile+`}
grpc_server: {reflection: true, max_concurrent_streams: 64, max_connection_age: 0s, max_connection_age_grace: 5s, keepalive_min_time: 30s, keepalive_permit_without_stream: false}
admin_server: {read_timeout: 1s, write_timeout: 2s, idle_timeout: 3s, pprof: true}
drain_delay: 7s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := TLS{MinVersion: "1.3",
		GRPC:  ListenerTLS{CertFile: pair.CertFile, KeyFile: pair.KeyFile, ClientCAFile: ca.File},
		Admin: ListenerTLS{CertFile: pair.CertFile, KeyFile: pair.KeyFile}}
	if !reflect.DeepEqual(cfg.TLS, want) {
		t.Errorf("tls = %+v\nwant %+v", cfg.TLS, want)
	}
	if cfg.TLS.HTTP.Enabled() || !cfg.TLS.GRPC.Enabled() {
		t.Error("only gRPC and admin serve TLS")
	}
	if got := cfg.TLS.Paths(); len(got) != 5 {
		t.Errorf("watched TLS paths %v", got)
	}
	if g := (GRPCServer{Reflection: true, MaxConcurrentStreams: 64, MaxConnectionAge: 0, MaxConnectionAgeGrace: 5 * time.Second,
		KeepaliveMinTime: 30 * time.Second, KeepalivePermitWithoutStream: false}); cfg.GRPCServer != g {
		t.Errorf("grpc_server = %+v", cfg.GRPCServer)
	}
	if a := (AdminServer{ReadTimeout: time.Second, WriteTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second, Pprof: true}); cfg.AdminServer != a || cfg.DrainDelay != 7*time.Second {
		t.Errorf("admin_server = %+v, drain_delay %v", cfg.AdminServer, cfg.DrainDelay)
	}

	d := Default()
	if d.GRPCServer.Reflection || d.TLS.GRPC.Enabled() || d.DrainDelay != 0 || d.GRPCServer.MaxConnectionAge != 10*time.Minute ||
		!d.GRPCServer.KeepalivePermitWithoutStream || d.AdminServer.WriteTimeout != 10*time.Second || d.AdminServer.Pprof {
		t.Errorf("defaults: %+v %+v %+v", d.TLS, d.GRPCServer, d.AdminServer)
	}
}

// TestDecodeListenProblems: one bad input per rule, positioned.
func TestDecodeListenProblems(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	ca.Server(t, dir, "a")
	ca.Server(t, dir, "b")
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "c.yaml")
	p := func(s string) string { return filepath.Join(dir, s) }
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"unreadable file", "tls: {grpc: {cert_file: missing.crt, key_file: a.key}}\n", []string{
			file + `:5:25: field "cert_file": ` + p("missing.crt") + `: no such file or directory`,
		}},
		{"key of another certificate", "tls: {http: {cert_file: a.crt, key_file: b.key}}\n", []string{
			file + `:5:42: field "key_file": ` + p("b.key") + `: private key does not match the certificate in cert_file: tls: private key does not match public key`,
		}},
		{"CA bundle without certificates", "tls: {admin: {cert_file: a.crt, key_file: a.key, client_ca_file: junk.pem}}\n", []string{
			file + `:5:66: field "client_ca_file": ` + p("junk.pem") + `: holds no PEM certificate`,
		}},
		{"key without certificate", "tls: {grpc: {key_file: a.key}}\n", []string{
			file + `:5:13: missing required field "cert_file" in tls.grpc`,
		}},
		{"certificate without key", "tls: {grpc: {cert_file: a.crt}}\n", []string{
			file + `:5:13: missing required field "key_file" in tls.grpc`,
		}},
		{"version and unknown key", "tls: {min_version: \"1.1\", grpc: {cert: a.crt}}\n", []string{
			file + `:5:20: field "min_version" must be "1.2" or "1.3", got "1.1"`,
			file + `:5:34: unknown field "cert" in tls.grpc`,
		}},
		{"grpc server", "grpc_server: {max_concurrent_streams: 0, max_connection_age: -1s, keepalive_min_time: 0s, reflection: yes}\n", []string{
			file + `:5:39: field "max_concurrent_streams" must be positive, got 0`,
			file + `:5:62: field "max_connection_age" must not be negative, got -1s`,
			file + `:5:87: field "keepalive_min_time" must be positive, got 0s`,
			file + `:5:103: field "reflection" must be true or false, got "yes"`,
		}},
		{"admin server and drain delay", "admin_server: {write_timeout: 0s}\ndrain_delay: -1s\n", []string{
			file + `:5:31: field "write_timeout" must be positive, got 0s`,
			file + `:6:14: field "drain_delay" must not be negative, got -1s`,
		}},
		{"extra rego builtins", "backends: [{name: a, manifest: m, extra_rego_builtins: [time.now_ns, count]}]\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := base + tc.doc
			if tc.want == nil {
				doc = strings.Replace(base, "backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]\n", "", 1) + tc.doc
			}
			_, err := Decode(file, []byte(doc))
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *catalog.ValidationError, got %v", err)
			}
			if tc.want == nil {
				want := file + `:4:70: field "extra_rego_builtins": "count" is not one of the excluded builtins (`
				if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "time.now_ns\" is not") {
					t.Errorf("got %v\nwant prefix %s", err, want)
				}
				return
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
