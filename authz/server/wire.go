package server

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

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
func (s *Server) CheckWire(ctx context.Context, req *authv3.CheckRequest) []byte {
	return s.checkWire(ctx, func(c *checkState) error { return envoy.MapRequest(req, &c.req) })
}

// CheckWireBytes is CheckWire from the CheckRequest's protobuf encoding,
// decoded straight into the mapped request (envoy.DecodeCheckRequest):
// exactly what the gRPC listener runs. Bytes that are no CheckRequest at
// all are an error (*envoy.WireError) and decide nothing.
func (s *Server) CheckWireBytes(ctx context.Context, data []byte) ([]byte, error) {
	var w wireRequest
	if err := w.decode(mem.BufferSlice{mem.SliceBuffer(data)}); err != nil {
		return nil, err
	}
	return s.checkDecoded(ctx, &w), nil
}

// checkDecoded answers a request the codec decoded.
func (s *Server) checkDecoded(ctx context.Context, w *wireRequest) []byte {
	return s.checkWire(ctx, func(c *checkState) error {
		c.req = w.req
		return w.mapErr
	})
}

// checkWire runs the check on the request mapIn puts in c.req (its error
// a refusal of the request) and encodes the answer.
func (s *Server) checkWire(ctx context.Context, mapIn func(c *checkState) error) (resp []byte) {
	start := s.deps.Now()
	c := &checkState{mode: modeGRPC}
	defer func() {
		if p := recover(); p != nil {
			resp = s.responder.AppendWire(nil, s.recovered(p))
		}
	}()
	s.checkMapped(ctx, c, mapIn(c))
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

// wireCheckHandler decodes the CheckRequest straight into the mapped
// request (through checkCodec, so a request with invalid UTF-8 still gets a
// 400) and answers it, behind the server's interceptors when it has any
// (they see the *wireRequest and the *wireResponse).
func wireCheckHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wireRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return &wireResponse{s.checkDecoded(ctx, in)}, nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return &wireResponse{s.checkDecoded(ctx, req.(*wireRequest))}, nil
	})
}
