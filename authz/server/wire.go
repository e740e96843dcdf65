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
type wireResponse struct {
	b      []byte
	pooled *[]byte // b's buffer from mem.DefaultBufferPool, nil if not pooled
}

// CheckWire is Check as the gRPC listener answered it before it decoded
// requests itself (CheckWireBytes): the same pipeline, the CheckResponse
// returned already encoded (protobuf wire format, what proto.Marshal of
// Check's answer decodes to).
func (s *Server) CheckWire(ctx context.Context, req *authv3.CheckRequest) []byte {
	c := &checkState{mode: modeGRPC}
	return s.checkWire(ctx, c, envoy.MapRequest(req, &c.req), make([]byte, 0, envoy.WireSizeHint))
}

// CheckWireBytes is CheckWire from the CheckRequest's protobuf encoding,
// decoded straight into the mapped request (envoy.DecodeCheckRequest), the
// answer appended to dst: exactly what the gRPC listener runs. Bytes that
// are no CheckRequest at all are an error (*envoy.WireError) and decide
// nothing.
func (s *Server) CheckWireBytes(ctx context.Context, data, dst []byte) ([]byte, error) {
	w := s.wireRequest()
	defer s.putWireRequest(w)
	if err := w.decodeBytes(data); err != nil {
		return nil, err
	}
	return s.checkWire(ctx, &w.c, w.mapErr, dst), nil
}

// wireRequest takes a decoded-request holder from the pool; putWireRequest
// returns it, emptied, once its check is answered and accounted.
func (s *Server) wireRequest() *wireRequest {
	if w, ok := s.wires.Get().(*wireRequest); ok {
		return w
	}
	return new(wireRequest)
}

func (s *Server) putWireRequest(w *wireRequest) {
	w.c, w.mapErr = checkState{}, nil
	s.wires.Put(w)
}

// checkWire runs the check on the request mapped into c.req (mapErr its
// refusal) and appends the encoded answer to dst.
func (s *Server) checkWire(ctx context.Context, c *checkState, mapErr error, dst []byte) (resp []byte) {
	start := s.deps.Now()
	c.mode = modeGRPC
	defer func() {
		if p := recover(); p != nil {
			resp = s.responder.AppendWire(dst[:0], s.recovered(p))
		}
	}()
	s.checkMapped(ctx, c, mapErr)
	resp = s.responder.AppendWire(dst, &c.out)
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
	s := srv.(*Server)
	reserveStack()
	if interceptor == nil {
		w := s.wireRequest()
		defer s.putWireRequest(w)
		if err := dec(w); err != nil {
			return nil, err
		}
		return s.answer(ctx, w), nil
	}
	// An interceptor may keep what it is given: no pooling.
	in := new(wireRequest)
	if err := dec(in); err != nil {
		return nil, err
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.answer(ctx, req.(*wireRequest)), nil
	})
}

// answer checks a decoded request into a pooled buffer that the codec hands
// to grpc-go, which returns it to the pool once written.
func (s *Server) answer(ctx context.Context, w *wireRequest) *wireResponse {
	buf := mem.DefaultBufferPool().Get(envoy.WireSizeHint)
	b := s.checkWire(ctx, &w.c, w.mapErr, (*buf)[:0])
	if cap(b) != cap(*buf) || len(b) == 0 {
		// Grown past the pooled buffer (or the buffer was not used): the
		// pooled one goes back now, the answer is sent as it is.
		mem.DefaultBufferPool().Put(buf)
		return &wireResponse{b: b}
	}
	*buf = b
	return &wireResponse{b: b, pooled: buf}
}
