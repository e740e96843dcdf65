package assembly

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
)

// serveGRPC serves gs on a free loopback port until the test ends.
func serveGRPC(t *testing.T, gs *grpc.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// envoyHTTPToGRPC is Envoy's own mapping (Grpc::Utility::httpToGrpcStatus),
// used only when a denial sets no grpc-status header.
func envoyHTTPToGRPC(status uint32) codes.Code {
	switch status {
	case 400:
		return codes.Internal
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.Unimplemented
	case 429, 502, 503, 504:
		return codes.Unavailable
	}
	return codes.Unknown
}

// envoyExtAuthz is a stream interceptor standing in for Envoy's ext_authz
// filter in front of a gRPC backend: it sends each call to ccauthz's Check
// as Envoy does (POST, :path = the method, the metadata as headers,
// content-type application/grpc) and answers a denial as Envoy's local
// reply does for a gRPC request: grpc-status from the denial's header
// (else Envoy's HTTP→gRPC mapping), grpc-message from its body.
func envoyExtAuthz(authz authv3.AuthorizationClient, backend string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		headers := map[string]string{":method": "POST", ":path": info.FullMethod, "content-type": "application/grpc"}
		for k, vs := range md {
			if !strings.HasPrefix(k, ":") {
				headers[k] = strings.Join(vs, ",")
			}
		}
		resp, err := authz.Check(ss.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "POST", Path: info.FullMethod, Host: "dws.example", Headers: headers, Protocol: "HTTP/2",
			}},
			ContextExtensions: map[string]string{"backend": backend},
		}})
		if err != nil {
			return status.Error(codes.Unavailable, "ext_authz: "+err.Error()) // failure_mode_allow off
		}
		if resp.GetOkResponse() != nil {
			return handler(srv, ss)
		}
		den := resp.GetDeniedResponse()
		code := envoyHTTPToGRPC(uint32(den.GetStatus().GetCode()))
		for _, h := range den.GetHeaders() {
			if h.GetHeader().GetKey() == "grpc-status" {
				n, err := strconv.Atoi(h.GetHeader().GetValue())
				if err != nil {
					return status.Error(codes.Internal, "bad grpc-status from ext_authz")
				}
				code = codes.Code(n)
			}
		}
		return status.Error(code, den.GetBody())
	}
}

// TestGRPCBackendDenials drives a real gRPC client through ccauthz's
// decision for the Duo Workflow Service (a gRPC backend): denials reach
// the client as gRPC statuses with the gateway's messages, allows reach the
// service.
func TestGRPCBackendDenials(t *testing.T) {
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = "embedded:example"
	cfg.Backends = []config.Backend{{Name: "duo_workflow_service", Manifest: "embedded:duo_workflow"}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if b, ok := a.Server.Snapshot().Backend("duo_workflow_service"); !ok || !b.GRPC {
		t.Fatal("the duo_workflow example manifest does not make a gRPC backend")
	}

	authzServer := grpc.NewServer()
	authv3.RegisterAuthorizationServer(authzServer, a.Server)
	authz := authv3.NewAuthorizationClient(serveGRPC(t, authzServer))

	var reached atomic.Int32
	dws := grpc.NewServer(
		grpc.StreamInterceptor(envoyExtAuthz(authz, "duo_workflow_service")),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			reached.Add(1)
			var in emptypb.Empty
			if err := ss.RecvMsg(&in); err != nil {
				return err
			}
			return ss.SendMsg(&emptypb.Empty{})
		}),
	)
	client := serveGRPC(t, dws)

	mint := func(scopes ...string) string {
		tok, err := dev.Mint(instance, "self-managed", scopes, []string{"gitlab-duo-workflow-service"}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	call := func(method, auth string) error {
		md := metadata.Pairs("x-gitlab-authentication-type", "oidc", "x-gitlab-instance-id", instance,
			"x-gitlab-realm", "self-managed", "x-gitlab-client-type", "gitlab-rails")
		if auth != "" {
			md.Set("authorization", auth)
		}
		cctx, ccancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), 5*time.Second)
		defer ccancel()
		return client.Invoke(cctx, method, &emptypb.Empty{}, &emptypb.Empty{})
	}

	tests := []struct {
		name, method, auth string
		code               codes.Code
		message            string // exact, or a prefix when it ends in "*"
	}{
		{"no token", "/DuoWorkflow/ExecuteWorkflow", "", codes.Unauthenticated, "No authorization header presented"},
		{"bare Bearer", "/DuoWorkflow/ExecuteWorkflow", "Bearer", codes.Unauthenticated, "Forbidden by auth provider"},
		{"forged token", "/DuoWorkflow/ExecuteWorkflow", "Bearer a.b.c", codes.Unauthenticated, "Forbidden by auth provider"},
		{"scope missing", "/DuoWorkflow/ExecuteWorkflow", mint("duo_chat"), codes.PermissionDenied, "Unauthorized to *"},
		{"unknown method", "/DuoWorkflow/NoSuchMethod", mint("duo_workflow_execute_workflow"), codes.Unimplemented, "Not Found"},
		{"allowed", "/DuoWorkflow/ExecuteWorkflow", mint("duo_workflow_execute_workflow"), codes.OK, ""},
		{"health is public", "/grpc.health.v1.Health/Check", "", codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := reached.Load()
			err := call(tc.method, tc.auth)
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code %s (%q), want %s", st.Code(), st.Message(), tc.code)
			}
			if p, ok := strings.CutSuffix(tc.message, "*"); ok && !strings.HasPrefix(st.Message(), p) || !ok && st.Message() != tc.message {
				t.Errorf("message %q, want %q", st.Message(), tc.message)
			}
			if got := reached.Load() - before; (tc.code == codes.OK) != (got == 1) {
				t.Errorf("the service was reached %d times", got)
			}
			if strings.HasPrefix(st.Message(), "{") {
				t.Errorf("a gRPC client got an HTTP JSON body: %q", st.Message())
			}
		})
	}
}
