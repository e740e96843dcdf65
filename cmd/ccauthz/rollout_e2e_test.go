package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/ccauthz/ccauthz/authz/certs/certstest"
)

// e2eBalancer routes checks, as Envoy with active health checks does, to the
// replicas whose gRPC health is SERVING, polled every interval.
type e2eBalancer struct {
	mu       sync.Mutex
	replicas []*e2eReplica
	next     int
}

type e2eReplica struct {
	name    string
	conn    *grpc.ClientConn
	client  authv3.AuthorizationClient
	health  healthpb.HealthClient
	serving atomic.Bool
	checks  atomic.Int64
}

func (b *e2eBalancer) add(t *testing.T, name, addr string) *e2eReplica {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &e2eReplica{name: name, conn: conn, client: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn)}
	b.mu.Lock()
	b.replicas = append(b.replicas, r)
	b.mu.Unlock()
	return r
}

// probe refreshes every replica's health once.
func (b *e2eBalancer) probe() {
	b.mu.Lock()
	rs := append([]*e2eReplica(nil), b.replicas...)
	b.mu.Unlock()
	for _, r := range rs {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		h, err := r.health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		r.serving.Store(err == nil && h.GetStatus() == healthpb.HealthCheckResponse_SERVING)
	}
}

// pick returns a SERVING replica, round robin; nil when none is.
func (b *e2eBalancer) pick() *e2eReplica {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range b.replicas {
		r := b.replicas[b.next%len(b.replicas)]
		b.next++
		if r.serving.Load() {
			return r
		}
	}
	return nil
}

// testServeRollingRestart runs two real replicas behind a health-checking
// client that sends checks continuously, restarts one (SIGTERM, a new
// process) and then stops the other, and expects every check answered.
func testServeRollingRestart(t *testing.T, bin string) {
	drainDelay := "2s"
	if v := os.Getenv("CCAUTHZ_E2E_DRAIN_DELAY"); v != "" {
		drainDelay = v // to see the test fail without a drain delay: 0s
	}
	key := e2eNewKey(t)
	ks := e2eNewKeyServer(t, key)
	cfg := filepath.Join(t.TempDir(), "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: gitlab, issuer: %s, jwks_url: %s}]
logging: {allow_sample_rate: 0}
check_timeout: 10s
drain_delay: %s
drain_timeout: 5s
`, e2eGitlabIss, ks.srv.URL, drainDelay))
	req := e2eReq("/v2/code/completions", "Bearer "+e2eMint(t, key, e2eGitlabIss, []string{"gitlab-ai-gateway"}, "complete_code"), nil)

	a := e2eStart(t, bin, "--config", cfg)
	b := e2eStart(t, bin, "--config", cfg)
	a.waitHTTP(t, "/readyz", 200)
	b.waitHTTP(t, "/readyz", 200)
	lb := &e2eBalancer{}
	ra, rb := lb.add(t, "a", a.grpc), lb.add(t, "b", b.grpc)
	lb.probe()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed, unrouted atomic.Int64
	var firstFailure atomic.Value
	const maxChecks = 200000 // bound on the load, whatever the machine's speed
	wg.Add(1)
	go func() { // health checks, like Envoy's, every 50ms
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				lb.probe()
			}
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && ok.Load()+failed.Load() < maxChecks {
				r := lb.pick()
				if r == nil {
					unrouted.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				// Generous: the test counts checks lost to the restart, not
				// slow ones on a loaded machine.
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := r.client.Check(cctx, req)
				cancel()
				if err != nil || resp.GetOkResponse() == nil {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("replica %s: %v %v", r.name, err, resp.GetDeniedResponse().GetBody()))
					continue
				}
				r.checks.Add(1)
				ok.Add(1)
			}
		}()
	}
	sigterm := func(p *e2eProc) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			p.done <- err
			if err != nil {
				t.Errorf("replica exited with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("replica did not stop after SIGTERM")
		}
	}
	waitChecks := func(r *e2eReplica, n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for r.checks.Load() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if r.checks.Load() < n {
			t.Fatalf("replica %s answered %d checks, want %d", r.name, r.checks.Load(), n)
		}
	}

	waitChecks(ra, 50)
	waitChecks(rb, 50)
	sigterm(a) // rolling update: the old pod goes
	a2 := e2eStart(t, bin, "--config", cfg)
	a2.waitHTTP(t, "/readyz", 200)
	ra2 := lb.add(t, "a2", a2.grpc)
	waitChecks(ra2, 50)
	sigterm(b)
	waitChecks(ra2, ra2.checks.Load()+50)
	stop()
	wg.Wait()

	t.Logf("rolling restart: %d checks answered (a %d, b %d, a2 %d), %d failed, %d waited for a SERVING replica",
		ok.Load(), ra.checks.Load(), rb.checks.Load(), ra2.checks.Load(), failed.Load(), unrouted.Load())
	if failed.Load() != 0 {
		t.Errorf("%d checks failed across the restart; first: %v", failed.Load(), firstFailure.Load())
	}
}

// testServeTLS serves gRPC over mTLS and the HTTP checks over TLS from the
// real binary with generated certificates, and rotates the gRPC certificate
// through the file watcher.
func testServeTLS(t *testing.T, bin string) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	clientCA := certstest.NewCA(t, dir, "client-ca")
	first := ca.Server(t, dir, "tls")
	envoy := clientCA.Client(t, dir, "envoy")
	key := e2eNewKey(t)
	ks := e2eNewKeyServer(t, key)
	cfg := filepath.Join(dir, "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: gitlab, issuer: %s, jwks_url: %s}]
tls:
  grpc: {cert_file: tls.crt, key_file: tls.key, client_ca_file: client-ca.crt}
  http: {cert_file: tls.crt, key_file: tls.key}
watch: {interval: 50ms, debounce: 50ms}
`, e2eGitlabIss, ks.srv.URL))
	p := e2eStart(t, bin, "--config", cfg) // admin stays plaintext
	p.waitHTTP(t, "/readyz", 200)
	req := e2eReq("/v2/code/completions", "Bearer "+e2eMint(t, key, e2eGitlabIss, []string{"gitlab-ai-gateway"}, "complete_code"), nil)

	dial := func(c *tls.Config) authv3.AuthorizationClient {
		conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(credentials.NewTLS(c)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return authv3.NewAuthorizationClient(conn)
	}
	check := func(c authv3.AuthorizationClient) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var pr peer.Peer
		resp, err := c.Check(ctx, req, grpc.Peer(&pr))
		if err != nil {
			return "", err
		}
		if resp.GetOkResponse() == nil {
			return "", fmt.Errorf("denied: %v", resp.GetDeniedResponse())
		}
		return pr.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.String(), nil
	}
	withCert := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{envoy.TLS}}
	old := dial(withCert)
	if serial, err := check(old); err != nil || serial != first.Cert.SerialNumber.String() {
		t.Fatalf("gRPC over mTLS: %v (serial %s)", err, serial)
	}
	if _, err := check(dial(&tls.Config{RootCAs: ca.Pool()})); err == nil {
		t.Error("a client without a certificate was answered")
	}
	if _, err := p.client.Check(context.Background(), req); err == nil {
		t.Error("a plaintext client was answered")
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + p.http + "/ext_authz/v2/code/completions")
	if err != nil {
		t.Fatalf("HTTP check over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 { // no token: a 401 decision, answered over TLS
		t.Errorf("HTTP check over TLS = %d, want 401", resp.StatusCode)
	}

	second := ca.Server(t, dir, "tls")
	deadline := time.Now().Add(20 * time.Second)
	for {
		serial, err := check(dial(withCert))
		if err == nil && serial == second.Cert.SerialNumber.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate never served: %v %s", err, serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if serial, err := check(old); err != nil || serial != first.Cert.SerialNumber.String() {
		t.Errorf("the connection from before the rotation: %v (serial %s)", err, serial)
	}
}

// testServeDefaultReflection: the embedded default (make run) keeps gRPC
// reflection on, so its printed grpcurl commands find the services; a config
// file that does not ask for it gets none.
func testServeDefaultReflection(t *testing.T, bin string) {
	list := func(p *e2eProc) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := reflectionpb.NewServerReflectionClient(p.conn).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		// A server without reflection may end the stream before the send:
		// Send then says io.EOF and the status comes from Recv (grpc-go's
		// contract), so only a client-side error is returned here.
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			out = append(out, s.GetName())
		}
		return out, nil
	}
	def := e2eStart(t, bin)
	services, err := list(def)
	if err != nil || !slices.Contains(services, "envoy.service.auth.v3.Authorization") {
		t.Errorf("embedded default: reflection lists %v, %v", services, err)
	}
	key := e2eNewKey(t)
	ks := e2eNewKeyServer(t, key)
	cfg := filepath.Join(t.TempDir(), "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: gitlab, issuer: %s, jwks_url: %s}]
`, e2eGitlabIss, ks.srv.URL))
	if services, err := list(e2eStart(t, bin, "--config", cfg)); status.Code(err) != codes.Unimplemented {
		t.Errorf("configured without reflection: %v, %v; want Unimplemented", services, err)
	}
}
