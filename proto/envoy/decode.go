package envoy

import (
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// WireError is a CheckRequest whose bytes are not a valid protobuf
// encoding of one (what proto.Unmarshal refuses for a reason other than
// invalid UTF-8): nothing is decided on it, and the gRPC listener answers
// the call with an error, as grpc-go's codec does.
type WireError struct{ Message string }

func (e *WireError) Error() string { return "malformed CheckRequest: " + e.Message }

var (
	errWireTruncated = &WireError{"truncated or malformed field"}
	errWireNumber    = &WireError{"field number out of range"}
	errWireDepth     = &WireError{"exceeded maximum recursion depth"}
)

// Field numbers DecodeCheckRequest reads by hand (envoy/service/auth/v3
// external_auth.proto and attribute_context.proto, envoy/config/core/v3
// address.proto and base.proto). TestDecodeFieldNumbers checks every one
// against go-control-plane's descriptors.
const (
	fReqAttributes protowire.Number = 1 // CheckRequest.attributes

	fAttrSource     protowire.Number = 1  // AttributeContext.source (Peer)
	fAttrRequest    protowire.Number = 4  // AttributeContext.request
	fAttrExtensions protowire.Number = 10 // AttributeContext.context_extensions

	fRequestHTTP protowire.Number = 2 // AttributeContext.Request.http

	fHTTPID        protowire.Number = 1  // HttpRequest.id
	fHTTPMethod    protowire.Number = 2  // HttpRequest.method
	fHTTPHeaders   protowire.Number = 3  // HttpRequest.headers (map)
	fHTTPPath      protowire.Number = 4  // HttpRequest.path
	fHTTPHost      protowire.Number = 5  // HttpRequest.host
	fHTTPQuery     protowire.Number = 7  // HttpRequest.query
	fHTTPBody      protowire.Number = 11 // HttpRequest.body
	fHTTPRawBody   protowire.Number = 12 // HttpRequest.raw_body
	fHTTPHeaderMap protowire.Number = 13 // HttpRequest.header_map

	fHeaderMapHeaders protowire.Number = 1 // HeaderMap.headers
	fHeaderRawValue   protowire.Number = 3 // HeaderValue.raw_value (fHeaderKey, fHeaderValue in wire.go)

	fPeerAddress          protowire.Number = 1 // Peer.address (core Address)
	fAddressSocket        protowire.Number = 1 // Address.socket_address (oneof address)
	fAddressPipe          protowire.Number = 2 // Address.pipe (oneof address)
	fAddressInternal      protowire.Number = 3 // Address.envoy_internal_address (oneof address)
	fSocketAddressAddress protowire.Number = 2 // SocketAddress.address
)

// The descriptors of the messages decoded by hand; a field read by hand is
// validated through them only when it is not what the hand-written code
// expects, and every other field entirely through them.
var (
	mdCheckRequest = (&authv3.CheckRequest{}).ProtoReflect().Descriptor()
	mdAttributes   = mdCheckRequest.Fields().ByNumber(fReqAttributes).Message()
	mdPeer         = mdAttributes.Fields().ByNumber(fAttrSource).Message()
	mdAddress      = mdPeer.Fields().ByNumber(fPeerAddress).Message()
	mdSocket       = mdAddress.Fields().ByNumber(fAddressSocket).Message()
	mdRequest      = mdAttributes.Fields().ByNumber(fAttrRequest).Message()
	mdHTTP         = mdRequest.Fields().ByNumber(fRequestHTTP).Message()
	mdHeaderMap    = mdHTTP.Fields().ByNumber(fHTTPHeaderMap).Message()
	mdHeaderValue  = mdHeaderMap.Fields().ByNumber(fHeaderMapHeaders).Message()
)

// wireDepth is protobuf-go's default recursion limit, which grpc-go's codec
// uses: a message nested deeper is refused, here too.
const wireDepth = protowire.DefaultRecursionLimit

// header is one header of header_map.
type header struct{ k, v string }

// rawHeader is one entry of the headers map, its value still the wire's
// bytes: a value MapRequest drops (the pseudo headers but the one a missing
// field falls back to) is never copied.
type rawHeader struct {
	k string
	v []byte
}

// CheckDecoder decodes CheckRequests (DecodeCheckRequest); one reused
// decoder keeps its scratch space between requests. It is not safe for
// concurrent use.
type CheckDecoder struct{ d checkDecoder }

// checkDecoder holds what DecodeCheckRequest collects from the wire before
// mapping it: the last value of every singular field (repeated occurrences
// of a message merge, as proto.Unmarshal does), the header entries in wire
// order.
type checkDecoder struct {
	invalid string // full name of the first string field with invalid UTF-8

	hasHTTP                       bool
	id, method, path, host, query string
	body                          string
	rawBody                       []byte
	headers                       []rawHeader
	headerMap                     []header
	rawInvalid                    bool // a header_map raw_value used as value is not UTF-8
	backend, stripPrefix, marker  string
	hasMarker                     bool
	sourceAddress                 string
	sourceIsSocket                bool
}

// DecodeCheckRequest decodes a protobuf-encoded CheckRequest straight into
// r, without building the CheckRequest message or its headers map twice: it
// is the gRPC listener's hot path. The result is what
// UnmarshalCheckRequest followed by MapRequest gives for the same bytes
// (TestDecodeMatchesMapRequest, FuzzDecodeCheckRequest): the same fields,
// header merging and errors — a *WireError where proto.Unmarshal fails for
// any reason but UTF-8, MapRequest's error (a *BadRequestError,
// ErrNoHTTPRequest) otherwise, with r then zero. Unknown fields are skipped
// and every field ccauthz does not use is still validated as proto.Unmarshal
// validates it. Where MapRequest depends on Go's map order (several
// spellings of one header name differing in case), headers are folded in
// the order of the wire.
//
// No string in r shares memory with data, which the caller may reuse.
func DecodeCheckRequest(data []byte, r *Request) error {
	var d CheckDecoder
	return d.Decode(data, r)
}

// maxPooledHeaders bounds the header scratch a decoder keeps between
// requests.
const maxPooledHeaders = 256

// Decode is DecodeCheckRequest with d's scratch space.
func (cd *CheckDecoder) Decode(data []byte, r *Request) error {
	*r = Request{}
	d := &cd.d
	*d = checkDecoder{headers: d.headers[:0], headerMap: d.headerMap[:0]}
	err := d.checkRequest(data, wireDepth)
	if err == nil {
		err = d.mapTo(r)
	}
	// The scratch space points into data, which the caller may reuse or
	// free, and holds the request's strings (the body up to its limit):
	// nothing of either stays reachable from a pooled decoder, nor scratch
	// grown by one request with thousands of headers.
	clear(d.headers)
	clear(d.headerMap)
	headers, headerMap := d.headers[:0], d.headerMap[:0]
	if cap(headers) > maxPooledHeaders {
		headers = nil
	}
	if cap(headerMap) > maxPooledHeaders {
		headerMap = nil
	}
	*d = checkDecoder{headers: headers, headerMap: headerMap}
	return err
}

// consumeTag reads a field's tag as protobuf-go's decoder does: a number
// outside 1..2^29-1 or an end-group tag outside a group is an error.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	switch {
	case n < 0:
		return 0, 0, 0, errWireTruncated
	case num > protowire.MaxValidNumber:
		return 0, 0, 0, errWireNumber
	case typ == protowire.EndGroupType:
		return 0, 0, 0, errWireTruncated
	}
	return num, typ, n, nil
}

// skip consumes a field proto.Unmarshal keeps as unknown.
func skip(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, errWireTruncated
	}
	return n, nil
}

// bytesField consumes a length-delimited field's content; ok is false
// when the field has another wire type (proto.Unmarshal keeps it as
// unknown: the caller skips it).
func bytesField(typ protowire.Type, b []byte) (v []byte, n int, ok bool, err error) {
	if typ != protowire.BytesType {
		return nil, 0, false, nil
	}
	v, n = protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, false, errWireTruncated
	}
	return v, n, true, nil
}

// str is a string field's value as its own string, noting the first field
// whose bytes are not UTF-8 (md's field num). Such a request is refused
// (mapTo) before any of its strings is used, so none is repaired.
func (d *checkDecoder) str(v []byte, md protoreflect.MessageDescriptor, num protowire.Number) string {
	if !utf8.Valid(v) {
		d.noteInvalid(md.Fields().ByNumber(num))
	}
	return string(v)
}

func (d *checkDecoder) noteInvalid(fd protoreflect.FieldDescriptor) {
	if d.invalid == "" {
		d.invalid = string(fd.FullName())
	}
}

// walk runs one hand-decoded message: fn handles the fields it knows and
// returns ok false for the others, which are validated through md.
func (d *checkDecoder) walk(b []byte, md protoreflect.MessageDescriptor, depth int,
	fn func(num protowire.Number, typ protowire.Type, b []byte, depth int) (n int, ok bool, err error)) error {
	if depth--; depth < 0 {
		return errWireDepth
	}
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		m, ok, err := fn(num, typ, b, depth)
		if err == nil && !ok {
			m, err = d.field(md.Fields().ByNumber(num), num, typ, b, depth)
		}
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// descend walks a message of which only the message field want is read:
// each occurrence goes to into (merged, as proto.Unmarshal merges repeated
// occurrences of a singular message), every other field is validated.
func (d *checkDecoder) descend(b []byte, md protoreflect.MessageDescriptor, depth int, want protowire.Number,
	into func(v []byte, depth int) error) error {
	return d.walk(b, md, depth, func(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
		if num != want {
			return 0, false, nil
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			return 0, ok, err
		}
		return n, true, into(v, depth)
	})
}

func (d *checkDecoder) checkRequest(b []byte, depth int) error {
	return d.descend(b, mdCheckRequest, depth, fReqAttributes, d.attributes)
}

func (d *checkDecoder) attributes(b []byte, depth int) error {
	return d.walk(b, mdAttributes, depth, func(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
		switch num {
		case fAttrSource, fAttrRequest:
		case fAttrExtensions:
			// A map field costs a level of depth before its wire type is
			// looked at (protobuf-go's consumeMap).
			if depth-1 < 0 {
				return 0, false, errWireDepth
			}
		default:
			return 0, false, nil
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			return 0, ok, err
		}
		switch num {
		case fAttrSource:
			err = d.peer(v, depth)
		case fAttrRequest:
			err = d.request(v, depth)
		default:
			err = d.extension(v)
		}
		return n, true, err
	})
}

// extension reads one context_extensions entry (map<string, string>).
func (d *checkDecoder) extension(b []byte) error {
	k, v, err := d.stringEntry(b, mdAttributes, fAttrExtensions)
	if err != nil {
		return err
	}
	switch k {
	case ContextExtensionBackend:
		d.backend = v
	case ContextExtensionStripPrefix:
		d.stripPrefix = v
	case ContextExtensionInvalidUTF8:
		d.marker, d.hasMarker = v, true
	}
	return nil
}

// stringEntry decodes one map<string, string> entry of md's field num: the
// key and value as proto.Unmarshal decodes them (absent is "", last wins,
// unknown fields skipped).
func (d *checkDecoder) stringEntry(b []byte, md protoreflect.MessageDescriptor, num protowire.Number) (k, v string, err error) {
	entry := md.Fields().ByNumber(num).Message()
	var kb, vb []byte
	for len(b) > 0 {
		f, typ, n, err := consumeTag(b)
		if err != nil {
			return "", "", err
		}
		b = b[n:]
		if f == 1 || f == 2 {
			x, m, ok, err := bytesField(typ, b)
			if err != nil {
				return "", "", err
			}
			if ok {
				if !utf8.Valid(x) {
					d.noteInvalid(entry.Fields().ByNumber(f))
				}
				if f == 1 {
					kb = x
				} else {
					vb = x
				}
				b = b[m:]
				continue
			}
		}
		m, err := skip(f, typ, b)
		if err != nil {
			return "", "", err
		}
		b = b[m:]
	}
	return internName(kb), string(vb), nil
}

func (d *checkDecoder) peer(b []byte, depth int) error {
	return d.descend(b, mdPeer, depth, fPeerAddress, d.address)
}

// address follows the oneof of core Address: the socket address counts
// only while it is the member last set, and a socket_address after another
// member starts from an empty message, while two in a row merge.
func (d *checkDecoder) address(b []byte, depth int) error {
	return d.walk(b, mdAddress, depth, func(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
		switch {
		case (num == fAddressPipe || num == fAddressInternal) && typ == protowire.BytesType:
			d.sourceIsSocket, d.sourceAddress = false, ""
			return 0, false, nil // validated through the descriptor
		case num != fAddressSocket:
			return 0, false, nil
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			return 0, ok, err
		}
		if !d.sourceIsSocket {
			d.sourceIsSocket, d.sourceAddress = true, ""
		}
		return n, true, d.descend(v, mdSocket, depth, fSocketAddressAddress, func(v []byte, _ int) error {
			d.sourceAddress = d.str(v, mdSocket, fSocketAddressAddress)
			return nil
		})
	})
}

func (d *checkDecoder) request(b []byte, depth int) error {
	return d.descend(b, mdRequest, depth, fRequestHTTP, func(v []byte, depth int) error {
		d.hasHTTP = true
		return d.http(v, depth)
	})
}

func (d *checkDecoder) http(b []byte, depth int) error {
	return d.walk(b, mdHTTP, depth, func(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
		switch num {
		case fHTTPID, fHTTPMethod, fHTTPPath, fHTTPHost, fHTTPQuery, fHTTPBody, fHTTPRawBody, fHTTPHeaderMap:
		case fHTTPHeaders:
			if depth-1 < 0 {
				return 0, false, errWireDepth
			}
		default:
			return 0, false, nil
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			return 0, ok, err
		}
		switch num {
		case fHTTPID:
			d.id = d.str(v, mdHTTP, num)
		case fHTTPMethod:
			d.method = method(v)
			if d.method == "" {
				d.method = d.str(v, mdHTTP, num)
			}
		case fHTTPPath:
			d.path = d.str(v, mdHTTP, num)
		case fHTTPHost:
			d.host = d.str(v, mdHTTP, num)
		case fHTTPQuery:
			d.query = d.str(v, mdHTTP, num)
		case fHTTPBody:
			d.body = d.str(v, mdHTTP, num)
		case fHTTPRawBody:
			d.rawBody = v // copied once decoding succeeded (mapTo)
		case fHTTPHeaders:
			err = d.headerEntry(v)
		case fHTTPHeaderMap:
			err = d.walk(v, mdHeaderMap, depth, func(num protowire.Number, typ protowire.Type, b []byte, depth int) (int, bool, error) {
				if num != fHeaderMapHeaders {
					return 0, false, nil
				}
				v, n, ok, err := bytesField(typ, b)
				if !ok || err != nil {
					return 0, ok, err
				}
				return n, true, d.headerValue(v, depth)
			})
		}
		return n, true, err
	})
}

// headerEntry reads one entry of HttpRequest.headers: one string holds the
// name and the value when the name is not a common one.
func (d *checkDecoder) headerEntry(b []byte) error {
	var kb, vb []byte
	// What every encoder writes: key (1), value (2), nothing else.
	if len(b) > 0 && b[0] == 0x0a {
		if k, n := protowire.ConsumeBytes(b[1:]); n >= 0 {
			if rest := b[1+n:]; len(rest) > 0 && rest[0] == 0x12 {
				if v, m := protowire.ConsumeBytes(rest[1:]); m >= 0 && 1+m == len(rest) {
					kb, vb, b = k, v, nil
					if !utf8.Valid(kb) {
						d.noteInvalid(mdHTTP.Fields().ByNumber(fHTTPHeaders).Message().Fields().ByNumber(1))
					}
					if !utf8.Valid(vb) {
						d.noteInvalid(mdHTTP.Fields().ByNumber(fHTTPHeaders).Message().Fields().ByNumber(2))
					}
				}
			}
		}
	}
	for rest := b; len(rest) > 0; {
		f, typ, n, err := consumeTag(rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
		if f == 1 || f == 2 {
			x, m, ok, err := bytesField(typ, rest)
			if err != nil {
				return err
			}
			if ok {
				if !utf8.Valid(x) {
					d.noteInvalid(mdHTTP.Fields().ByNumber(fHTTPHeaders).Message().Fields().ByNumber(f))
				}
				if f == 1 {
					kb = x
				} else {
					vb = x
				}
				rest = rest[m:]
				continue
			}
		}
		m, err := skip(f, typ, rest)
		if err != nil {
			return err
		}
		rest = rest[m:]
	}
	d.headers = append(d.headers, rawHeader{internName(kb), vb})
	return nil
}

// headerValue reads one HeaderValue of header_map: its value, or its
// raw_value when the value is empty (as MapRequest reads it).
func (d *checkDecoder) headerValue(b []byte, depth int) error {
	var kb, vb, raw []byte
	err := d.walk(b, mdHeaderValue, depth, func(num protowire.Number, typ protowire.Type, b []byte, _ int) (int, bool, error) {
		if num != fHeaderKey && num != fHeaderValue && num != fHeaderRawValue {
			return 0, false, nil
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			return 0, ok, err
		}
		switch num {
		case fHeaderKey:
			if !utf8.Valid(v) {
				d.noteInvalid(mdHeaderValue.Fields().ByNumber(num))
			}
			kb = v
		case fHeaderValue:
			if !utf8.Valid(v) {
				d.noteInvalid(mdHeaderValue.Fields().ByNumber(num))
			}
			vb = v
		default:
			raw = v
		}
		return n, true, nil
	})
	if err != nil {
		return err
	}
	if len(vb) == 0 && len(raw) > 0 {
		vb = raw
		if !utf8.Valid(raw) {
			d.rawInvalid = true
		}
	}
	d.headerMap = append(d.headerMap, header{internName(kb), string(vb)})
	return nil
}

// field validates one field of a message decoded through its descriptor,
// as proto.Unmarshal would decode it (fd nil: an unknown field), and
// returns its length.
func (d *checkDecoder) field(fd protoreflect.FieldDescriptor, num protowire.Number, typ protowire.Type, b []byte, depth int) (int, error) {
	if fd == nil {
		return skip(num, typ, b)
	}
	if fd.IsMap() {
		if depth--; depth < 0 {
			return 0, errWireDepth
		}
		v, n, ok, err := bytesField(typ, b)
		if !ok || err != nil {
			if err == nil {
				return skip(num, typ, b)
			}
			return 0, err
		}
		return n, d.mapEntry(v, fd, depth)
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.StringKind, protoreflect.BytesKind:
		v, n, ok, err := bytesField(typ, b)
		if err != nil {
			return 0, err
		}
		if !ok {
			return skip(num, typ, b)
		}
		switch fd.Kind() {
		case protoreflect.MessageKind:
			err = d.message(v, fd.Message(), depth)
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				d.noteInvalid(fd)
			}
		}
		return n, err
	case protoreflect.GroupKind:
		// Not in the CheckRequest's schema (proto3); kept as proto.Unmarshal
		// keeps a field it does not decode.
		return skip(num, typ, b)
	}
	want := scalarWireType(fd.Kind())
	if fd.IsList() && typ == protowire.BytesType {
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, errWireTruncated
		}
		for len(v) > 0 {
			m := protowire.ConsumeFieldValue(num, want, v)
			if m < 0 {
				return 0, errWireTruncated
			}
			v = v[m:]
		}
		return n, nil
	}
	return skip(num, typ, b) // a scalar of the right type, or unknown
}

// scalarWireType is the wire type of a scalar kind.
func scalarWireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// message validates a message decoded through its descriptor.
func (d *checkDecoder) message(b []byte, md protoreflect.MessageDescriptor, depth int) error {
	if depth--; depth < 0 {
		return errWireDepth
	}
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		m, err := d.field(md.Fields().ByNumber(num), num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// mapEntry validates one map entry (key 1, value 2; anything else unknown).
func (d *checkDecoder) mapEntry(b []byte, fd protoreflect.FieldDescriptor, depth int) error {
	for len(b) > 0 {
		num, typ, n, err := consumeTag(b)
		if err != nil {
			return err
		}
		b = b[n:]
		var f protoreflect.FieldDescriptor
		switch num {
		case 1:
			f = fd.MapKey()
		case 2:
			f = fd.MapValue()
		}
		m, err := d.field(f, num, typ, b, depth)
		if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// method is the HTTP method as a constant string when it is a common one,
// "" otherwise (the caller copies it): no allocation for the usual ones.
func method(v []byte) string {
	switch string(v) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	}
	return ""
}

// internName is a header name as a string: a constant for the names every
// Cloud Connector check carries (no allocation), a copy otherwise.
func internName(v []byte) string {
	switch string(v) {
	case ":authority":
		return ":authority"
	case ":method":
		return ":method"
	case ":path":
		return ":path"
	case ":scheme":
		return ":scheme"
	case "authorization":
		return "authorization"
	case "content-type":
		return "content-type"
	case "content-length":
		return "content-length"
	case "user-agent":
		return "user-agent"
	case "accept":
		return "accept"
	case "accept-encoding":
		return "accept-encoding"
	case "host":
		return "host"
	case "traceparent":
		return "traceparent"
	case "x-request-id":
		return "x-request-id"
	case "x-forwarded-for":
		return "x-forwarded-for"
	case "x-forwarded-proto":
		return "x-forwarded-proto"
	case "x-envoy-internal":
		return "x-envoy-internal"
	case "x-envoy-expected-rq-timeout-ms":
		return "x-envoy-expected-rq-timeout-ms"
	case HeaderPartialBody:
		return HeaderPartialBody
	case "x-gitlab-authentication-type":
		return "x-gitlab-authentication-type"
	case "x-gitlab-instance-id":
		return "x-gitlab-instance-id"
	case "x-gitlab-realm":
		return "x-gitlab-realm"
	case "x-gitlab-global-user-id":
		return "x-gitlab-global-user-id"
	case "x-gitlab-host-name":
		return "x-gitlab-host-name"
	case "x-gitlab-version":
		return "x-gitlab-version"
	case "x-gitlab-duo-seat-count":
		return "x-gitlab-duo-seat-count"
	case "x-gitlab-unit-primitive":
		return "x-gitlab-unit-primitive"
	case "x-gitlab-feature-enabled-by-namespace-ids":
		return "x-gitlab-feature-enabled-by-namespace-ids"
	case "x-gitlab-feature-enablement-type":
		return "x-gitlab-feature-enablement-type"
	case "x-gitlab-language-server-version":
		return "x-gitlab-language-server-version"
	case "x-gitlab-client-type":
		return "x-gitlab-client-type"
	case "x-gitlab-client-version":
		return "x-gitlab-client-version"
	case "x-gitlab-client-name":
		return "x-gitlab-client-name"
	case "x-gitlab-interface":
		return "x-gitlab-interface"
	case "x-gitlab-is-team-member":
		return "x-gitlab-is-team-member"
	case "x-gitlab-saas-duo-pro-namespace-ids":
		return "x-gitlab-saas-duo-pro-namespace-ids"
	case HeaderBackend:
		return HeaderBackend
	}
	return string(v)
}

// mapTo does MapRequest's work on the decoded fields.
func (d *checkDecoder) mapTo(r *Request) error {
	if !d.hasHTTP {
		return ErrNoHTTPRequest
	}
	if d.invalid != "" {
		return badRequest("the check request has a string that is not valid UTF-8 (in %s)", d.invalid)
	}
	if d.hasMarker {
		return badRequest("the check request has a string that is not valid UTF-8 (in %s)", d.marker)
	}
	var authorization, pseudoMethod, pseudoPath, authority string
	headers := make(map[string]string, len(d.headers)+len(d.headerMap))
	if d.foldsCase() {
		authorization, pseudoMethod, pseudoPath, authority = d.foldSlow(headers)
	} else {
		// Every name is lower case: the pseudo headers and authorization
		// never enter the map (MapRequest deletes them), the map's last
		// value wins and header_map's values join onto it. A pseudo header
		// is copied only when its field is empty (MapRequest's fallback).
		var auth, pm, pp, pa []byte
		for _, h := range d.headers {
			switch {
			case h.k == "authorization":
				auth = h.v
			case strings.HasPrefix(h.k, ":"):
				switch h.k {
				case ":method":
					pm = h.v
				case ":path":
					pp = h.v
				case ":authority":
					pa = h.v
				}
			default:
				headers[h.k] = string(h.v)
			}
		}
		authorization = string(auth)
		joined := len(d.headerMap) > 0
		if d.method == "" || joined {
			if pseudoMethod = method(pm); pseudoMethod == "" {
				pseudoMethod = string(pm)
			}
		}
		if d.path == "" || joined {
			pseudoPath = string(pp)
		}
		if d.host == "" || joined {
			authority = string(pa)
		}
		if len(d.headerMap) > 0 {
			// MapRequest folds header_map in through the map; here the
			// special names stay out of it (as above).
			headers["authorization"], headers[":method"], headers[":path"], headers[":authority"] =
				authorization, pseudoMethod, pseudoPath, authority
			d.mergeHeaderMap(headers, nil)
			authorization, pseudoMethod, pseudoPath, authority =
				headers["authorization"], headers[":method"], headers[":path"], headers[":authority"]
			for k := range headers {
				if k == "authorization" || strings.HasPrefix(k, ":") {
					delete(headers, k)
				}
			}
		}
	}
	r.Authorization = authorization
	r.Backend = d.backend
	if d.sourceIsSocket {
		r.SourceAddress = d.sourceAddress
	}
	r.TraceParent = headers["traceparent"]
	// On the two errors below, r keeps what MapRequest has set by then.
	if d.rawInvalid {
		if err := CheckHeaderValues(headers); err != nil {
			return err
		}
	}
	if hb, ok := headers[HeaderBackend]; ok && r.Backend != "" && hb != r.Backend {
		return badRequest("the backend is named twice, differently (context extension %q and header %s)", ContextExtensionBackend, HeaderBackend)
	}
	in := &r.Input
	in.Method = strings.ToUpper(firstNonEmpty(d.method, pseudoMethod))
	in.Host = strings.ToLower(firstNonEmpty(d.host, authority, headers["host"]))
	in.Path, in.Query = SplitPath(firstNonEmpty(d.path, pseudoPath))
	r.RawPath = in.Path
	r.StripPrefix = d.stripPrefix
	if in.Query == "" && d.query != "" {
		in.Query = strings.TrimPrefix(d.query, "?")
	}
	in.Headers = headers
	r.RequestID = firstNonEmpty(d.id, headers["x-request-id"])
	var raw []byte
	if len(d.rawBody) > 0 {
		raw = append([]byte(nil), d.rawBody...) // data is the caller's
	}
	r.Body = EnvoyBody(raw, d.body, headers)
	return nil
}

func setPseudo(k, v string, method, path, authority *string) {
	switch k {
	case ":method":
		*method = v
	case ":path":
		*path = v
	case ":authority":
		*authority = v
	}
}

// foldHeaders normalises headers in place, visiting the names in keys (any
// order of the map's names; MapRequest's is Go's map order, the decoder's
// the wire's): authorization and the pseudo headers leave the map (their
// values returned), and a name not in lower case joins its lower-case name.
// A name's visit changes only other names, so the joins can wait until
// every name is visited and run once each (joinAll), not once a spelling:
// thousands of spellings of one name cost linear time. Two spellings of
// authorization are joined, which the verifier then rejects as malformed:
// ambiguity never picks a token.
func foldHeaders(headers map[string]string, keys []string) (authorization, method, path, authority string) {
	var auth []string
	var pending map[string][]string
	for _, k := range keys {
		v, ok := headers[k]
		if !ok {
			continue
		}
		lk := strings.ToLower(k)
		switch {
		case lk == "authorization":
			auth = append(auth, v)
			delete(headers, k)
		case strings.HasPrefix(lk, ":"):
			setPseudo(lk, v, &method, &path, &authority)
			delete(headers, k)
		case lk != k:
			delete(headers, k)
			if pending == nil {
				pending = map[string][]string{}
			}
			pending[lk] = append(pending[lk], v)
		}
	}
	for lk, vs := range pending {
		headers[lk] = joinAll(headers[lk], vs)
	}
	return joinAll("", auth), method, path, authority
}

// foldsCase reports whether a name of the headers map is not in lower
// case, which needs MapRequest's folding (foldSlow).
func (d *checkDecoder) foldsCase() bool {
	for _, h := range d.headers {
		for i := 0; i < len(h.k); i++ {
			if c := h.k[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
				if strings.ToLower(h.k) != h.k {
					return true
				}
				break
			}
		}
	}
	return false
}

// foldSlow is MapRequest's folding, step by step, with the map's keys
// visited in the order they first appeared on the wire (MapRequest visits
// them in Go's map order, which this is one of).
func (d *checkDecoder) foldSlow(headers map[string]string) (authorization, method, path, authority string) {
	order := make([]string, 0, len(d.headers)+len(d.headerMap))
	for _, h := range d.headers {
		if _, ok := headers[h.k]; !ok {
			order = append(order, h.k)
		}
		headers[h.k] = string(h.v)
	}
	d.mergeHeaderMap(headers, &order)
	return foldHeaders(headers, order)
}

// mergeHeaderMap joins header_map's values onto headers under their
// lower-case names, as MapRequest's addHeader does one at a time, in time
// linear in the values (many values of one name would make the one at a
// time joins quadratic). order, when not nil, gets the names new to
// headers in the order they first appear.
func (d *checkDecoder) mergeHeaderMap(headers map[string]string, order *[]string) {
	if len(d.headerMap) <= 8 {
		for _, h := range d.headerMap {
			k := strings.ToLower(h.k)
			if _, ok := headers[k]; !ok && order != nil {
				*order = append(*order, k)
			}
			addHeader(headers, k, h.v)
		}
		return
	}
	values := make(map[string][]string, len(d.headerMap))
	for _, h := range d.headerMap {
		k := strings.ToLower(h.k)
		if _, seen := values[k]; !seen {
			if _, ok := headers[k]; !ok && order != nil {
				*order = append(*order, k)
			}
		}
		values[k] = append(values[k], h.v)
	}
	for k, vs := range values {
		headers[k] = joinAll(headers[k], vs)
	}
}

// joinAll is joinHeader of old and each of vs in turn: the values from the
// first non-empty one on, joined with ",".
func joinAll(old string, vs []string) string {
	if old == "" {
		for len(vs) > 0 && vs[0] == "" {
			vs = vs[1:]
		}
		if len(vs) == 0 {
			return ""
		}
		old, vs = vs[0], vs[1:]
	}
	if len(vs) == 0 {
		return old
	}
	n := len(old)
	for _, v := range vs {
		n += 1 + len(v)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(old)
	for _, v := range vs {
		b.WriteByte(',')
		b.WriteString(v)
	}
	return b.String()
}
