package server

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// checkCodec is grpc-go's proto codec, except on the Check path: a
// CheckRequest is decoded straight from the wire into the mapped request
// (envoy.DecodeCheckRequest, into a *wireRequest), so a request whose
// strings are not valid UTF-8 still decodes and gets a 400 decision instead
// of the gRPC INTERNAL that a fail-open Envoy would let through, and a
// CheckResponse the check path encoded itself (wireResponse) is sent as it
// is. Everything else takes the default codec's path unchanged.
type checkCodec struct{ encoding.CodecV2 }

func newCheckCodec() checkCodec { return checkCodec{encoding.GetCodecV2("proto")} }

// Marshal sends a wireResponse's bytes as they are (wire.go); everything
// else is the default codec's.
func (c checkCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireResponse); ok {
		if w.pooled != nil {
			// grpc-go frees the slice once the message is written, which
			// puts the buffer back in the pool.
			return mem.BufferSlice{mem.NewBuffer(w.pooled, mem.DefaultBufferPool())}, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(w.b)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func (c checkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(*wireRequest); ok {
		return w.decode(data)
	}
	err := c.CodecV2.Unmarshal(data, v)
	if req, ok := v.(*authv3.CheckRequest); ok && err != nil {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return envoy.UnmarshalCheckRequest(buf.ReadOnlyData(), req)
	}
	return err
}

// wireRequest is a CheckRequest as the gRPC listener decodes it: the
// check it starts, its request already mapped, and MapRequest's error when
// it refuses it (a 400 decision, not a gRPC error). The server pools them
// (wire.go), decoder scratch space included.
type wireRequest struct {
	c      checkState
	mapErr error
	dec    envoy.CheckDecoder
}

// decode fills w from the request bytes; only bytes that are no
// CheckRequest at all are an error (the call's, as grpc-go's codec answers
// them).
func (w *wireRequest) decode(data mem.BufferSlice) error {
	if len(data) == 1 {
		return w.decodeBytes(data[0].ReadOnlyData()) // DecodeCheckRequest copies what it keeps
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return w.decodeBytes(buf.ReadOnlyData())
}

func (w *wireRequest) decodeBytes(b []byte) error {
	err := w.dec.Decode(b, &w.c.req)
	if _, ok := err.(*envoy.WireError); ok {
		return err
	}
	w.mapErr = err
	return nil
}
