package server

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// TestServeAndDrain serves on loopback, checks over real gRPC, then cancels
// and expects health to turn NOT_SERVING, Serve to return, and no goroutine
// of the server to outlive it.
func TestServeAndDrain(t *testing.T) {
	assertNoLeak := goroutineBaseline(t)
	h := newHarness(t, Options{DrainTimeout: 2 * time.Second, ReadinessInterval: 10 * time.Millisecond,
		GRPC: GRPCOptions{Reflection: true}}, aiGateway())
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, Listeners{GRPC: grpcLis, Admin: adminLis}) }()

	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), request("/allowed", "Bearer good-i", nil, ""))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("check over gRPC: %v %v", resp, err)
	}
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "ai_gateway", AuthorizationService} {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r.GetStatus(), err)
		}
	}
	// Reflection lists the ext_authz and health services (grpcurl needs it).
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	listed, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, svc := range listed.GetListServicesResponse().GetService() {
		services[svc.GetName()] = true
	}
	if !services[AuthorizationService] || !services["grpc.health.v1.Health"] {
		t.Errorf("reflection lists %v", services)
	}
	_ = stream.CloseSend()
	if _, err := stream.Recv(); err == nil {
		t.Error("reflection stream not closed")
	}

	// Watch the overall status flip when the drain starts.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watch, err := hc.Watch(watchCtx, &healthpb.HealthCheckRequest{Service: ""})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch status: %v %v", first, err)
	}
	cancel()
	if next, err := watch.Recv(); err == nil && next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("status during drain = %v, want NOT_SERVING", next.GetStatus())
	}
	// A Watch stream is an in-flight RPC that GracefulStop waits for; the
	// client ends it once it saw NOT_SERVING, as load balancers do.
	stopWatch()
	drainStart := time.Now()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		if d := time.Since(drainStart); d > time.Second {
			t.Errorf("drain with nothing in flight took %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if err := h.srv.Ready(); err == nil {
		t.Error("a draining server must not be ready")
	}
	conn.Close()
	assertNoLeak()
}

// TestWatchReloadsOnceAfterDebounce changes a watched file in a burst and
// expects one reload once it settled.
func TestWatchReloadsOnceAfterDebounce(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	var builds atomic.Int32
	var broken atomic.Bool
	orig := h.build
	h.build = func(ctx context.Context) (*Snapshot, error) {
		builds.Add(1)
		if broken.Load() {
			return nil, errors.New("manifest.yaml: no such file")
		}
		return orig(ctx)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(file, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.Watch(ctx, []string{dir}, 10*time.Millisecond, 150*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(30 * time.Millisecond)
	for i := range 5 {
		if err := os.WriteFile(file, []byte("v2"+string(rune('a'+i))), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := builds.Load(); n != 0 {
		t.Fatalf("reloaded %d times during the burst", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for builds.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := builds.Load(); n != 1 {
		t.Errorf("%d reloads, want exactly 1", n)
	}
	// A deleted file is a change too (and its reload failing keeps the old snapshot).
	broken.Store(true)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	for builds.Load() == 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if builds.Load() != 2 || h.srv.Snapshot() == nil {
		t.Errorf("deleting a watched file: %d reloads", builds.Load())
	}
}
