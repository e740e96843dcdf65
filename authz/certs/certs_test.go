package certs_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/certs"
	"github.com/ccauthz/ccauthz/authz/certs/certstest"
)

func TestLoadProblems(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	a := ca.Server(t, dir, "a")
	b := ca.Server(t, dir, "b")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name  string
		files certs.Files
		field string
		want  string
	}{
		{"missing cert", certs.Files{CertFile: missing, KeyFile: a.KeyFile}, "cert_file", "no such file or directory"},
		{"missing key", certs.Files{CertFile: a.CertFile, KeyFile: missing}, "key_file", "no such file or directory"},
		{"cert not PEM", certs.Files{CertFile: junk, KeyFile: a.KeyFile}, "cert_file", "no PEM CERTIFICATE block"},
		{"key not PEM", certs.Files{CertFile: a.CertFile, KeyFile: junk}, "key_file", "no PEM private key block"},
		{"key of another cert", certs.Files{CertFile: a.CertFile, KeyFile: b.KeyFile}, "key_file", "private key does not match the certificate in cert_file"},
		{"CA bundle empty", certs.Files{CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: junk}, "client_ca_file", "holds no PEM certificate"},
		{"CA bundle missing", certs.Files{CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: missing}, "client_ca_file", "no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certs.Load(tc.files)
			var ce *certs.Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *certs.Error, got %v", err)
			}
			if ce.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got field %q error %q, want field %q containing %q", ce.Field, err, tc.field, tc.want)
			}
			if tc.field == "key_file" && strings.Contains(tc.want, "match") && !errors.Is(err, certs.ErrKeyMismatch) {
				t.Errorf("mismatch must wrap ErrKeyMismatch: %v", err)
			}
		})
	}
	if err := certs.Check(certs.Files{CertFile: a.CertFile, KeyFile: a.KeyFile, ClientCAFile: ca.File}); err != nil {
		t.Errorf("good files: %v", err)
	}
}

// serve accepts TLS connections and answers each line with the line.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func echo(t *testing.T, c *tls.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
}

func TestRotationReachesNewConnectionsOnly(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	first := ca.Server(t, dir, "server")
	src, err := certs.Load(certs.Files{CertFile: first.CertFile, KeyFile: first.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src.ServerConfig())
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}

	old, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	echo(t, old)
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", got, first.Cert.SerialNumber)
	}

	// A broken rotation (key of another cert) keeps the last good pair.
	other := ca.Server(t, t.TempDir(), "other")
	second := ca.Server(t, dir, "server") // overwrites server.crt/.key
	if err := os.Rename(other.KeyFile, second.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); !errors.Is(err, certs.ErrKeyMismatch) {
		t.Fatalf("reload of a mismatched pair: %v", err)
	}
	if src.Leaf().SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatal("a failed reload replaced the served certificate")
	}

	third := ca.Server(t, dir, "server")
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	fresh, err := tls.Dial("tcp", addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	echo(t, fresh)
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(third.Cert.SerialNumber) != 0 {
		t.Errorf("new connection got serial %v, want the rotated %v", got, third.Cert.SerialNumber)
	}
	echo(t, old) // the connection from before the rotation still works
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	clientCA := certstest.NewCA(t, dir, "client-ca")
	srv := ca.Server(t, dir, "server")
	src, err := certs.Load(certs.Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: clientCA.File})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src.ServerConfig())
	good := clientCA.Client(t, dir, "envoy")
	stranger := ca.Client(t, dir, "stranger") // signed by a CA the server does not trust

	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{good.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c)
	c.Close()

	for name, cfg := range map[string]*tls.Config{
		"no client certificate":       {RootCAs: ca.Pool(), ServerName: "127.0.0.1"},
		"certificate of another CA":   {RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{stranger.TLS}},
		"TLS 1.1 (below the minimum)": {RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{good.TLS}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, cfg)
			if err == nil {
				// TLS 1.3 reports a refused client certificate on the first read.
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write([]byte("ping\n"))
				_, err = bufio.NewReader(c).ReadString('\n')
				c.Close()
			}
			if err == nil {
				t.Fatal("connection accepted")
			}
		})
	}
}

// TestRemovedClientCAShutsOutItsClients: after the CA bundle drops a CA, a
// client it signed cannot connect again, not even by resuming an earlier
// TLS session.
func TestRemovedClientCAShutsOutItsClients(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	oldCA := certstest.NewCA(t, dir, "old-client-ca")
	srv := ca.Server(t, dir, "server")
	client := oldCA.Client(t, dir, "envoy")
	bundle := filepath.Join(dir, "bundle.crt")
	pemOf := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := os.WriteFile(bundle, pemOf(oldCA.File), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := certs.Load(certs.Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: bundle})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, src.ServerConfig())
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{client.TLS},
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, c) // reads the session ticket, if any was sent
	c.Close()

	newCA := certstest.NewCA(t, dir, "new-client-ca")
	if err := os.WriteFile(bundle, pemOf(newCA.File), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err = tls.Dial("tcp", addr, cfg)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("ping\n"))
		_, err = bufio.NewReader(c).ReadString('\n')
		if c.ConnectionState().DidResume {
			t.Error("a session was resumed past the CA bundle")
		}
		c.Close()
	}
	if err == nil {
		t.Fatal("a client of the removed CA was answered")
	}
}
