package server

import (
	"context"
	"net"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
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

// TestCheckWireBytes: the listener's path from the request bytes (decoded
// straight into the mapped request) answers what CheckWire answers for the
// decoded message, and bytes that are no CheckRequest are an error, over
// the gRPC listener too (the call fails; nothing is decided).
func TestCheckWireBytes(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: time.Second}, aiGateway())
	ai := map[string]string{"backend": "ai_gateway"}
	upper := request("/allowed", "", ai, "")
	upper.Attributes.Request.Http.Headers["Authorization"] = "Bearer good-inst1"
	for name, req := range map[string]*authv3.CheckRequest{
		"allow":       request("/allowed", "Bearer good-inst1", ai, ""),
		"deny":        request("/denied", "Bearer good-inst1", ai, ""),
		"no token":    request("/allowed", "", ai, ""),
		"upper case":  upper,
		"bad request": request("/a/../../b", "Bearer good-i", ai, ""),
		"no http":     {},
	} {
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.srv.CheckWireBytes(context.Background(), data, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got, want authv3.CheckResponse
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(h.srv.CheckWire(context.Background(), req), &want); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*authv3.CheckResponse{&got, &want} {
			delete(r.GetDynamicMetadata().GetFields(), "decision_id")
		}
		if !proto.Equal(&got, &want) {
			t.Errorf("%s: CheckWireBytes differs from CheckWire:\nbytes %s\nwire  %s", name, prototext.Format(&got), prototext.Format(&want))
		}
	}
	garbage := []byte{0x0a, 0x05, 0x01}
	if b, err := h.srv.CheckWireBytes(context.Background(), garbage, nil); err == nil {
		t.Fatalf("garbage decoded and answered %x", b)
	}
	conn := serveLoopback(t, h)
	var resp authv3.CheckResponse
	err := conn.Invoke(context.Background(), authv3.Authorization_Check_FullMethodName, &garbage, &resp, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.Internal {
		t.Fatalf("garbage over gRPC: %v, want INTERNAL and no CheckResponse", err)
	}
}
