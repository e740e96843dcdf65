package server

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// checkCodec is grpc-go's proto codec, except that a CheckRequest whose
// strings are not valid UTF-8 still decodes (envoy.UnmarshalCheckRequest)
// and gets a 400 decision, instead of the gRPC INTERNAL that a fail-open
// Envoy would let through, and a CheckResponse the check path encoded
// itself (wireResponse) is sent as it is. Everything else, and every
// CheckRequest that decodes normally, takes the default codec's path
// unchanged.
type checkCodec struct{ encoding.CodecV2 }

func newCheckCodec() checkCodec { return checkCodec{encoding.GetCodecV2("proto")} }

// Marshal sends a wireResponse's bytes as they are (wire.go); everything
// else is the default codec's.
func (c checkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		return mem.BufferSlice{mem.SliceBuffer(w.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if req, ok := v.(*authv3.CheckRequest); ok && err != nil {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return envoy.UnmarshalCheckRequest(buf.ReadOnlyData(), req)
	}
	return err
}
