package server

import (
	"context"
	"net"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// serveLoopback serves h's server on 127.0.0.1 free ports until the test
// ends and returns a client connection to its gRPC listener.
func serveLoopback(t *testing.T, h *harness) *grpc.ClientConn {
	t.Helper()
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
	t.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return conn
}

// TestWireCheckMatchesCheck: over the gRPC listener a check is answered
// with bytes the check path encoded itself (wire.go); decoded by the
// client's go-control-plane types they are the CheckResponse Check
// returns in process, for an allow, denials (HTTP and gRPC backend, no
// token, bad request, unknown backend) and dry-run, apart from the
// decision id, which is unique per check.
func TestWireCheckMatchesCheck(t *testing.T) {
	grpcBackend := &Backend{Name: "duo_workflow", Audience: "gitlab-duo-workflow-service", GRPC: true}
	for _, dry := range []bool{false, true} {
		h := newHarness(t, Options{DrainTimeout: time.Second, DryRun: dry}, aiGateway(), grpcBackend)
		client := authv3.NewAuthorizationClient(serveLoopback(t, h))
		ai := map[string]string{"backend": "ai_gateway"}
		for name, req := range map[string]func() *authv3.CheckRequest{
			"allow":     func() *authv3.CheckRequest { return request("/allowed", "Bearer good-inst1", ai, "") },
			"deny":      func() *authv3.CheckRequest { return request("/denied", "Bearer good-inst1", ai, "") },
			"no token":  func() *authv3.CheckRequest { return request("/allowed", "", ai, "") },
			"bad token": func() *authv3.CheckRequest { return request("/allowed", "Bearer garbage", ai, "") },
			"grpc backend": func() *authv3.CheckRequest {
				return request("/denied", "Bearer good-i", map[string]string{"backend": "duo_workflow"}, "")
			},
			"unknown": func() *authv3.CheckRequest {
				return request("/allowed", "Bearer good-i", map[string]string{"backend": "nope"}, "")
			},
			"bad request":    func() *authv3.CheckRequest { return request("/a/../../b", "Bearer good-i", ai, "") },
			"no http at all": func() *authv3.CheckRequest { return &authv3.CheckRequest{} },
		} {
			got, err := client.Check(context.Background(), req())
			if err != nil {
				t.Fatalf("dry-run %v, %s: Check over gRPC: %v", dry, name, err)
			}
			want, _ := h.srv.Check(context.Background(), req())
			if len(got.ProtoReflect().GetUnknown()) != 0 {
				t.Errorf("dry-run %v, %s: unknown fields on the wire", dry, name)
			}
			for _, r := range []*authv3.CheckResponse{got, want} {
				if r.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue() == "" {
					t.Fatalf("dry-run %v, %s: no decision id", dry, name)
				}
				delete(r.GetDynamicMetadata().GetFields(), "decision_id")
			}
			if !proto.Equal(got, want) {
				t.Errorf("dry-run %v, %s: the wire answer differs from Check's:\nwire  %s\ncheck %s", dry, name, prototext.Format(got), prototext.Format(want))
			}
		}
	}
}
