package envoy

import (
	"errors"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ContextExtensionInvalidUTF8 marks a CheckRequest that UnmarshalCheckRequest
// decoded only after replacing invalid UTF-8 in its string fields; its value
// names the first such field. MapRequest refuses such a request (400
// bad_request). The name cannot come from a route: Envoy's config keys are
// not expected to use it, and a route that set it would only refuse checks.
const ContextExtensionInvalidUTF8 = "ccauthz.invalid_utf8"

var errMalformedWire = errors.New("malformed protobuf wire data")

// UnmarshalCheckRequest decodes a CheckRequest like proto.Unmarshal, but a
// string field that is not valid UTF-8 (Envoy's C++ encoder does not check;
// the headers map can carry obs-text) does not fail the decode: proto3
// requires UTF-8, and grpc-go would answer gRPC INTERNAL before Check runs,
// which a fail-open Envoy lets through. Such strings are made valid (U+FFFD)
// and the request is marked with ContextExtensionInvalidUTF8, so it gets a
// 400 decision instead. Any other decoding error is returned.
func UnmarshalCheckRequest(data []byte, req *authv3.CheckRequest) error {
	err := proto.Unmarshal(data, req)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		return err
	}
	fixed, field, ferr := validStrings(data, req.ProtoReflect().Descriptor())
	if ferr != nil || field == "" {
		return err
	}
	proto.Reset(req)
	if err := proto.Unmarshal(fixed, req); err != nil {
		return err
	}
	if req.Attributes == nil {
		req.Attributes = &authv3.AttributeContext{}
	}
	if req.Attributes.ContextExtensions == nil {
		req.Attributes.ContextExtensions = map[string]string{}
	}
	req.Attributes.ContextExtensions[ContextExtensionInvalidUTF8] = field
	return nil
}

// validStrings re-encodes the wire data of a message of type md with every
// string field made valid UTF-8, recursing into sub-messages (map entries
// included), and returns the name of the first field it changed.
func validStrings(b []byte, md protoreflect.MessageDescriptor) ([]byte, string, error) {
	out := make([]byte, 0, len(b))
	first := ""
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, "", errMalformedWire
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, "", errMalformedWire
			}
			out = append(out, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, "", errMalformedWire
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
				if first == "" {
					first = string(fd.FullName())
				}
			}
		case protoreflect.MessageKind:
			sub, f, err := validStrings(v, fd.Message())
			if err != nil {
				return nil, "", err
			}
			v = sub
			if first == "" {
				first = f
			}
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, first, nil
}
