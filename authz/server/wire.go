package server

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// wireResponse is a CheckResponse already encoded (envoy.AppendWire): the
// gRPC Check handler returns it instead of the message, and checkCodec
// sends its bytes as they are. Envoy decodes the same CheckResponse that
// Check returns (TestWireCheckMatchesCheck); building the message and then
// marshalling it was most of a cached check's allocations and a sixth of
// its CPU end to end.
type wireResponse struct{ b []byte }

// CheckWire is Check as the gRPC listener answers it: the same pipeline,
// the CheckResponse returned already encoded (protobuf wire format, what
// proto.Marshal of Check's answer decodes to).
func (s *Server) CheckWire(ctx context.Context, req *authv3.CheckRequest) (resp []byte) {
	start := s.deps.Now()
	c := &checkState{mode: modeGRPC}
	defer func() {
		if p := recover(); p != nil {
			resp = s.responder.AppendWire(nil, s.recovered(p))
		}
	}()
	s.checkGRPC(ctx, req, c)
	resp = s.responder.AppendWire(make([]byte, 0, envoy.WireSizeHint), &c.out)
	s.account(c, start)
	return resp
}

// authorizationService is envoy.service.auth.v3.Authorization with a Check
// handler that answers through CheckWire. The names are the generated
// descriptor's, so clients, reflection and health see the same service.
var authorizationService = grpc.ServiceDesc{
	ServiceName: AuthorizationService,
	HandlerType: (*authv3.AuthorizationServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: wireCheckHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "envoy/service/auth/v3/external_auth.proto",
}

// wireCheckHandler decodes the CheckRequest (through checkCodec, so a
// request with invalid UTF-8 still gets a 400) and runs CheckWire, behind
// the server's interceptors when it has any (they see the *wireResponse).
func wireCheckHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(authv3.CheckRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return &wireResponse{s.CheckWire(ctx, in)}, nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return &wireResponse{s.CheckWire(ctx, req.(*authv3.CheckRequest))}, nil
	})
}
