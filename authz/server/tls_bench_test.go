package server

import (
	"context"
	"crypto/tls"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ccauthz/ccauthz/authz/certs"
	"github.com/ccauthz/ccauthz/authz/certs/certstest"
)

// BenchmarkGRPCCheck is one check over a real loopback gRPC connection
// (kept open, as Envoy keeps it), plaintext and mTLS, with fakes behind
// the server: the transport's share of a check and what TLS adds to it.
func BenchmarkGRPCCheck(b *testing.B) {
	dir := b.TempDir()
	ca := certstest.NewCA(b, dir, "ca")
	pair := ca.Server(b, dir, "server")
	client := ca.Client(b, dir, "envoy")
	src, err := certs.Load(certs.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile, ClientCAFile: ca.File})
	if err != nil {
		b.Fatal(err)
	}
	mtls := credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}})
	for _, bc := range []struct {
		name  string
		lt    ListenerTLS
		creds credentials.TransportCredentials
	}{
		{"plaintext", ListenerTLS{}, insecure.NewCredentials()},
		{"mTLS", ListenerTLS{GRPC: src.ServerConfig()}, mtls},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(&testing.T{}, Options{}, aiGateway())
			h.deciders["ai_gateway"].quiet, h.ver.quiet = true, true
			s := serveOn(b, h, bc.lt)
			defer s.stop()
			conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(bc.creds))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			c := authv3.NewAuthorizationClient(conn)
			req := request("/allowed", "Bearer good-inst1", nil, "cloud.gitlab.com")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("check: %v", err)
				}
			}
		})
	}
}

// BenchmarkMTLSHandshake is a new mTLS connection (full handshake, the
// current material read per handshake) and one check on it: what a
// reconnect after max_connection_age costs.
func BenchmarkMTLSHandshake(b *testing.B) {
	dir := b.TempDir()
	ca := certstest.NewCA(b, dir, "ca")
	pair := ca.Server(b, dir, "server")
	client := ca.Client(b, dir, "envoy")
	src, err := certs.Load(certs.Files{CertFile: pair.CertFile, KeyFile: pair.KeyFile, ClientCAFile: ca.File})
	if err != nil {
		b.Fatal(err)
	}
	h := newHarness(&testing.T{}, Options{}, aiGateway())
	h.deciders["ai_gateway"].quiet, h.ver.quiet = true, true
	s := serveOn(b, h, ListenerTLS{GRPC: src.ServerConfig()})
	defer s.stop()
	creds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}}))
	req := request("/allowed", "Bearer good-inst1", nil, "cloud.gitlab.com")
	b.ReportAllocs()
	for b.Loop() {
		conn, err := grpc.NewClient(s.grpc, creds)
		if err != nil {
			b.Fatal(err)
		}
		if resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req); err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("check: %v", err)
		}
		conn.Close()
	}
}
