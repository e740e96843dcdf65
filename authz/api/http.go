package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

// maxRequestBytes bounds a JSON request body; every request of the API is
// small.
const maxRequestBytes = 1 << 20

// Services are the ccauthz.v1 services a server exposes, with where: GRPC
// registers them on the gRPC listener, Admin mounts their JSON form on the
// admin listener. The server calls RegisterGRPC and AdminRoutes once each.
type Services struct {
	Catalog *CatalogService
	// Decision is DecisionService; nil leaves it out.
	Decision *DecisionService
	GRPC     bool
	Admin    bool
}

// RegisterGRPC registers the services on gs when GRPC is set.
func (s *Services) RegisterGRPC(gs *grpc.Server) {
	if s == nil || !s.GRPC {
		return
	}
	ccauthzv1.RegisterCatalogServiceServer(gs, s.Catalog)
	if s.Decision != nil {
		ccauthzv1.RegisterDecisionServiceServer(gs, s.Decision)
	}
}

// AdminRoutes mounts POST /api/ccauthz.v1.<Service>/<Method> on mux when
// Admin is set: the request and response are the messages in protojson
// (field names as in the .proto, lowerCamelCase accepted too), errors are
// {"code": "...", "message": "..."} with the matching HTTP status.
func (s *Services) AdminRoutes(mux *http.ServeMux) {
	if s == nil || !s.Admin {
		return
	}
	c := s.Catalog
	routes := map[string]func(ctx context.Context, body []byte) (proto.Message, error){
		"ListUnitPrimitives": unary(c.ListUnitPrimitives),
		"GetUnitPrimitive":   unary(c.GetUnitPrimitive),
		"ListBackends":       unary(c.ListBackends),
		"ListAddOns":         unary(c.ListAddOns),
		"Grant":              unary(c.Grant),
	}
	for method, call := range routes {
		mux.HandleFunc("POST /api/"+ccauthzv1.CatalogService_ServiceDesc.ServiceName+"/"+method, func(w http.ResponseWriter, r *http.Request) {
			serveJSON(w, r, call)
		})
	}
	if d := s.Decision; d != nil {
		call := unary(d.Explain)
		mux.HandleFunc("POST /api/"+ccauthzv1.DecisionService_ServiceDesc.ServiceName+"/Explain", func(w http.ResponseWriter, r *http.Request) {
			serveJSON(w, r, call)
		})
	}
}

// unary adapts a typed service method to the JSON route: it decodes the
// body into a new request message.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](f func(context.Context, PReq) (Resp, error)) func(context.Context, []byte) (proto.Message, error) {
	return func(ctx context.Context, body []byte) (proto.Message, error) {
		req := PReq(new(Req))
		if len(body) > 0 {
			if err := (protojson.UnmarshalOptions{}).Unmarshal(body, req); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "request body: %v", err)
			}
		}
		return f(ctx, req)
	}
}

func serveJSON(w http.ResponseWriter, r *http.Request, call func(context.Context, []byte) (proto.Message, error)) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err == nil && len(body) > maxRequestBytes {
		err = status.Errorf(codes.ResourceExhausted, "request body over %d bytes", maxRequestBytes)
	}
	var resp proto.Message
	if err == nil {
		resp, err = call(r.Context(), body)
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		st := status.Convert(err)
		w.WriteHeader(httpStatus(st.Code()))
		_ = json.NewEncoder(w).Encode(map[string]string{"code": st.Code().String(), "message": st.Message()})
		return
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": codes.Internal.String(), "message": err.Error()})
		return
	}
	_, _ = w.Write(append(out, '\n'))
}

// httpStatus maps the codes the services return to HTTP statuses.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.ResourceExhausted:
		return http.StatusRequestEntityTooLarge
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
