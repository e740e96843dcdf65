package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
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

	"github.com/ccauthz/ccauthz/authz/certs"
	"github.com/ccauthz/ccauthz/authz/certs/certstest"
)

// served is a server on three loopback listeners.
type served struct {
	grpc, http, admin string
	stop              func()
}

func serveOn(t testing.TB, h *harness, lt ListenerTLS) served {
	t.Helper()
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, Listeners{GRPC: ls[0], HTTP: ls[1], Admin: ls[2], TLS: lt}) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return served{grpc: ls[0].Addr().String(), http: ls[1].Addr().String(), admin: ls[2].Addr().String(), stop: stop}
}

func grpcCheck(t *testing.T, conn *grpc.ClientConn) (*authv3.CheckResponse, *peer.Peer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p peer.Peer
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, request("/allowed", "Bearer good-i", nil, ""), grpc.Peer(&p))
	return resp, &p, err
}

func servedSerial(t *testing.T, p *peer.Peer) string {
	t.Helper()
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		t.Fatalf("no TLS peer info: %#v", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.String()
}

func httpsGet(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestTLSAndMTLSOnEveryListener serves gRPC, the HTTP checks and admin over
// mTLS with real certificates: a client with a certificate the CA signed
// is answered on each, one without is refused on each, and a plaintext
// client gets nowhere.
func TestTLSAndMTLSOnEveryListener(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	clientCA := certstest.NewCA(t, dir, "client-ca")
	srvPair := ca.Server(t, dir, "server")
	envoy := clientCA.Client(t, dir, "envoy")
	src, err := certs.Load(certs.Files{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: clientCA.File})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{}, aiGateway())
	cfg := src.ServerConfig()
	s := serveOn(t, h, ListenerTLS{GRPC: cfg, HTTP: cfg, Admin: cfg})

	withCert := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{envoy.TLS}}
	noCert := &tls.Config{RootCAs: ca.Pool()}

	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(credentials.NewTLS(withCert)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, _, err := grpcCheck(t, conn); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("gRPC check over mTLS: %v %v", resp, err)
	}
	for name, creds := range map[string]grpc.DialOption{
		"no client certificate": grpc.WithTransportCredentials(credentials.NewTLS(noCert)),
		"plaintext":             grpc.WithTransportCredentials(insecure.NewCredentials()),
	} {
		bad, err := grpc.NewClient(s.grpc, creds)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := grpcCheck(t, bad); status.Code(err) != codes.Unavailable {
			t.Errorf("gRPC, %s: want Unavailable (handshake refused), got %v", name, err)
		}
		bad.Close()
	}

	good := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: withCert}}
	refused := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: noCert}}
	defer good.CloseIdleConnections()
	for _, url := range []string{"https://" + s.admin + "/healthz", "https://" + s.http + "/ext_authz/allowed"} {
		if code, err := httpsGet(good, url); err != nil || code != 401 && code != 200 {
			// /ext_authz/allowed without a token is a 401 decision: answered.
			t.Errorf("%s with a client certificate: %d %v", url, code, err)
		}
		if code, err := httpsGet(refused, url); err == nil {
			t.Errorf("%s without a client certificate answered %d", url, code)
		}
		if code, err := httpsGet(&http.Client{Timeout: 5 * time.Second}, "http://"+url[len("https://"):]); err == nil && code < 400 {
			t.Errorf("%s over plaintext answered %d", url, code)
		}
	}
	if code, _ := httpsGet(good, "https://"+s.admin+"/healthz"); code != 200 {
		t.Errorf("/healthz over mTLS = %d", code)
	}
}

// TestTLSRotationKeepsOpenConnections: the watcher reloads a rotated
// certificate; new connections get it, a connection opened before keeps
// answering checks.
func TestTLSRotationKeepsOpenConnections(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t, dir, "ca")
	first := ca.Server(t, dir, "server")
	src, err := certs.Load(certs.Files{CertFile: first.CertFile, KeyFile: first.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{}, aiGateway())
	s := serveOn(t, h, ListenerTLS{GRPC: src.ServerConfig()})
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		h.srv.WatchTLS(ctx, []*certs.Source{src}, 10*time.Millisecond, 20*time.Millisecond)
	}()
	defer func() { cancel(); <-watched }()

	creds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}))
	old, err := grpc.NewClient(s.grpc, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	_, p, err := grpcCheck(t, old)
	if err != nil || servedSerial(t, p) != first.Cert.SerialNumber.String() {
		t.Fatalf("first check: %v", err)
	}

	second := ca.Server(t, dir, "server") // rewrites server.crt and server.key
	deadline := time.Now().Add(10 * time.Second)
	for src.Leaf().SerialNumber.Cmp(second.Cert.SerialNumber) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fresh, err := grpc.NewClient(s.grpc, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	_, p, err = grpcCheck(t, fresh)
	if err != nil || servedSerial(t, p) != second.Cert.SerialNumber.String() {
		t.Fatalf("new connection after rotation: %v, serial %v want %v", err, p.AuthInfo, second.Cert.SerialNumber)
	}
	_, p, err = grpcCheck(t, old)
	if err != nil || servedSerial(t, p) != first.Cert.SerialNumber.String() {
		t.Fatalf("the connection from before the rotation: %v", err)
	}
	logged := false
	for _, l := range h.logs.lines(t) {
		logged = logged || (l["msg"] == "TLS material reloaded" && l["serial"] == second.Cert.SerialNumber.String())
	}
	if !logged {
		t.Error("rotation not logged")
	}
}

// TestReflectionOptIn: without GRPCOptions.Reflection the reflection
// service is not registered.
func TestReflectionOptIn(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	s := serveOn(t, h, ListenerTLS{})
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err == nil {
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection without opt-in: %v, want Unimplemented", err)
	}
}

// TestDrainDelay: after cancel, health is NOT_SERVING and /readyz 503 at
// once, while checks are still answered, on open and new connections, for
// the drain delay; then Serve stops.
func TestDrainDelay(t *testing.T) {
	const delay = 600 * time.Millisecond
	h := newHarness(t, Options{DrainDelay: delay, DrainTimeout: 2 * time.Second}, aiGateway())
	s := serveOn(t, h, ListenerTLS{})
	dial := func() *grpc.ClientConn {
		c, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	open := dial()
	defer open.Close()
	if resp, _, err := grpcCheck(t, open); err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("check before the drain: %v", err)
	}
	stopped := make(chan struct{})
	start := time.Now()
	go func() { s.stop(); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for h.srv.Ready() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var problems []string
	hc := healthpb.NewHealthClient(open)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		problems = append(problems, fmt.Sprintf("health during the drain delay: %v %v", r.GetStatus(), err))
	}
	if code, err := httpsGet(&http.Client{Timeout: 5 * time.Second}, "http://"+s.admin+"/readyz"); err != nil || code != 503 {
		problems = append(problems, fmt.Sprintf("/readyz during the drain delay: %d %v", code, err))
	}
	fresh := dial()
	defer fresh.Close()
	for _, c := range []struct {
		name string
		conn *grpc.ClientConn
	}{{"open connection", open}, {"new connection", fresh}} {
		if resp, _, err := grpcCheck(t, c.conn); err != nil || resp.GetOkResponse() == nil {
			problems = append(problems, fmt.Sprintf("check on an %s during the drain delay: %v", c.name, err))
		}
	}
	if len(problems) > 0 && time.Since(start) >= delay {
		t.Skipf("machine too slow to probe within the drain delay (%v): %v", time.Since(start), problems)
	}
	for _, p := range problems {
		t.Error(p)
	}
	select {
	case <-stopped:
		if d := time.Since(start); d < delay {
			t.Errorf("Serve stopped after %v, before the drain delay %v", d, delay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not stop after the drain delay")
	}
}

// TestAdminReadTimeout: a client that never finishes its request is cut
// after admin_server.read_timeout instead of holding the connection.
func TestAdminReadTimeout(t *testing.T) {
	h := newHarness(t, Options{Admin: AdminOptions{ReadTimeout: 200 * time.Millisecond}}, aiGateway())
	s := serveOn(t, h, ListenerTLS{})
	c, err := net.Dial("tcp", s.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil { // no final CRLF
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the admin listener kept a half-sent request open for 10s")
			}
			break // closed by the server (after any 408 it wrote)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cut after %v, want about the 200ms read timeout", d)
	}
}

// TestMaxConnectionAge: a connection older than max_connection_age is
// closed (GOAWAY) and the client reconnects, so checks spread over replicas
// added later; checks keep succeeding across it.
func TestMaxConnectionAge(t *testing.T) {
	h := newHarness(t, Options{GRPC: GRPCOptions{MaxConnectionAge: 200 * time.Millisecond, MaxConnectionAgeGrace: time.Second}}, aiGateway())
	s := serveOn(t, h, ListenerTLS{})
	var dials atomic.Int32
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for dials.Load() < 2 && time.Now().Before(deadline) {
		if resp, _, err := grpcCheck(t, conn); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("check failed across a connection-age close: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dials.Load() < 2 {
		t.Errorf("one connection served checks for 20s: max_connection_age not enforced")
	}
}
