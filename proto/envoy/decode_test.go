package envoy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestDecodeFieldNumbers checks the hand-read field numbers and kinds
// against go-control-plane's descriptors.
func TestDecodeFieldNumbers(t *testing.T) {
	for _, c := range []struct {
		md   protoreflect.MessageDescriptor
		num  protowire.Number
		name string
		kind protoreflect.Kind
	}{
		{mdCheckRequest, fReqAttributes, "attributes", protoreflect.MessageKind},
		{mdAttributes, fAttrSource, "source", protoreflect.MessageKind},
		{mdAttributes, fAttrRequest, "request", protoreflect.MessageKind},
		{mdAttributes, fAttrExtensions, "context_extensions", protoreflect.MessageKind},
		{mdRequest, fRequestHTTP, "http", protoreflect.MessageKind},
		{mdHTTP, fHTTPID, "id", protoreflect.StringKind},
		{mdHTTP, fHTTPMethod, "method", protoreflect.StringKind},
		{mdHTTP, fHTTPHeaders, "headers", protoreflect.MessageKind},
		{mdHTTP, fHTTPPath, "path", protoreflect.StringKind},
		{mdHTTP, fHTTPHost, "host", protoreflect.StringKind},
		{mdHTTP, fHTTPQuery, "query", protoreflect.StringKind},
		{mdHTTP, fHTTPBody, "body", protoreflect.StringKind},
		{mdHTTP, fHTTPRawBody, "raw_body", protoreflect.BytesKind},
		{mdHTTP, fHTTPHeaderMap, "header_map", protoreflect.MessageKind},
		{mdHeaderMap, fHeaderMapHeaders, "headers", protoreflect.MessageKind},
		{mdHeaderValue, fHeaderKey, "key", protoreflect.StringKind},
		{mdHeaderValue, fHeaderValue, "value", protoreflect.StringKind},
		{mdHeaderValue, fHeaderRawValue, "raw_value", protoreflect.BytesKind},
		{mdPeer, fPeerAddress, "address", protoreflect.MessageKind},
		{mdAddress, fAddressSocket, "socket_address", protoreflect.MessageKind},
		{mdAddress, fAddressPipe, "pipe", protoreflect.MessageKind},
		{mdAddress, fAddressInternal, "envoy_internal_address", protoreflect.MessageKind},
		{mdSocket, fSocketAddressAddress, "address", protoreflect.StringKind},
	} {
		fd := c.md.Fields().ByNumber(c.num)
		if fd == nil || string(fd.Name()) != c.name || fd.Kind() != c.kind {
			t.Errorf("%s field %d: got %v, want %s (%v)", c.md.FullName(), c.num, fd, c.name, c.kind)
		}
	}
	if !mdAttributes.Fields().ByNumber(fAttrExtensions).IsMap() || !mdHTTP.Fields().ByNumber(fHTTPHeaders).IsMap() {
		t.Error("context_extensions and headers must be maps")
	}
}

// reference is today's path: UnmarshalCheckRequest (grpc-go's codec with
// the UTF-8 repair) then MapRequest.
func reference(data []byte) (r Request, wireErr, mapErr error) {
	var req authv3.CheckRequest
	if err := UnmarshalCheckRequest(data, &req); err != nil {
		return Request{}, err, nil
	}
	return r, nil, MapRequest(&req, &r)
}

// ambiguous reports whether MapRequest's result for data depends on Go's
// map order: two names of the headers (and header_map) differ only in
// case. Then only an order-free view of the headers is compared.
func ambiguous(data []byte) bool {
	var req authv3.CheckRequest
	if UnmarshalCheckRequest(data, &req) != nil {
		return false
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	seen := map[string]string{}
	for k := range h.GetHeaders() {
		lk := strings.ToLower(k)
		if o, ok := seen[lk]; ok && o != k {
			return true
		}
		seen[lk] = k
	}
	if len(seen) == len(h.GetHeaders()) && len(h.GetHeaderMap().GetHeaders()) == 0 {
		return false
	}
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		lk := strings.ToLower(hv.GetKey())
		if o, ok := seen[lk]; ok && o != lk {
			return true
		}
	}
	return false
}

// pieces is a value's non-empty comma-separated parts, sorted: what
// folding the same headers in another order keeps (joinHeader drops empty
// values only before the first non-empty one).
func pieces(v string) string {
	p := slices.DeleteFunc(strings.Split(v, ","), func(s string) bool { return s == "" })
	slices.Sort(p)
	return strings.Join(p, ",")
}

// sameDecode compares DecodeCheckRequest with the reference on data and
// returns what differs, "" when nothing does.
func sameDecode(data []byte) string {
	want, wantWire, wantMap := reference(data)
	var got Request
	err := DecodeCheckRequest(data, &got)
	var wireErr *WireError
	isWire := errors.As(err, &wireErr)
	switch {
	case (wantWire != nil) != isWire:
		return "wire error: got " + errString(err) + ", want " + errString(wantWire)
	case wantWire != nil:
		return ""
	}
	amb := ambiguous(data)
	if (wantMap == nil) != (err == nil) {
		return "mapping error: got " + errString(err) + ", want " + errString(wantMap)
	}
	if wantMap != nil {
		g, w := err.Error(), wantMap.Error()
		if g != w && !(strings.HasPrefix(g, "header ") && strings.HasPrefix(w, "header ")) {
			return "mapping error: got " + g + ", want " + w
		}
		if reflect.TypeOf(err) != reflect.TypeOf(wantMap) {
			return "mapping error type differs"
		}
	}
	if amb {
		if got.Backend != want.Backend || got.SourceAddress != want.SourceAddress || got.StripPrefix != want.StripPrefix ||
			pieces(got.Authorization) != pieces(want.Authorization) || len(got.Input.Headers) != len(want.Input.Headers) {
			return "ambiguous request: fields differ"
		}
		for k, v := range want.Input.Headers {
			if g, ok := got.Input.Headers[k]; !ok || pieces(g) != pieces(v) {
				return "ambiguous request: header " + k + " differs"
			}
		}
		return ""
	}
	if !bytes.Equal(got.Body.Data, want.Body.Data) {
		return "body data differs"
	}
	got.Body.Data, want.Body.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		return "requests differ:\n got  " + strings.ReplaceAll(fmtRequest(got), "\n", " ") + "\n want " + strings.ReplaceAll(fmtRequest(want), "\n", " ")
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func fmtRequest(r Request) string {
	return strings.Join([]string{
		"method=" + r.Input.Method, "host=" + r.Input.Host, "path=" + r.Input.Path, "query=" + r.Input.Query,
		"auth=" + r.Authorization, "backend=" + r.Backend, "tp=" + r.TraceParent, "id=" + r.RequestID,
		"src=" + r.SourceAddress, "raw=" + r.RawPath, "strip=" + r.StripPrefix, "headers=" + strings.Join(sortedHeaders(r.Input.Headers), ";"),
	}, " ")
}

func sortedHeaders(h map[string]string) []string {
	var out []string
	for k, v := range h {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// envoyRequest is a CheckRequest as Envoy sends one for a Cloud Connector
// call, with every part the decoder reads and several it only validates.
func envoyRequest() *authv3.CheckRequest {
	meta, _ := structpb.NewStruct(map[string]any{"k": "v", "n": 1.5, "l": []any{"a", true}, "s": map[string]any{"x": nil}})
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}}}},
			Principal: "spiffe://x", Labels: map[string]string{"a": "b"},
		},
		Destination:       &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/p", Mode: 0o600}}}},
		ContextExtensions: map[string]string{"backend": "ai_gateway", "strip_prefix": "/ai", "other": "x"},
		MetadataContext:   &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters": meta}},
		TlsSession:        &authv3.AttributeContext_TLSSession{Sni: "cloud.gitlab.com"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "42", Method: "post", Path: "/ai/v2/code/completions?a=1", Host: "Cloud.GitLab.com", Scheme: "https",
			Protocol: "HTTP/2", Size: 12, Body: `{"a":1}`,
			Headers: map[string]string{
				":authority": "cloud.gitlab.com", ":method": "POST", ":path": "/ai/v2/code/completions?a=1", ":scheme": "https",
				"authorization": "Bearer tok", "x-gitlab-instance-id": "i-1", "x-gitlab-realm": "self-managed",
				"content-length": "7", "x-envoy-auth-partial-body": "false", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"x-request-id": "rid", "user-agent": "gitlab-rails", "x-custom": "c",
			},
		}},
	}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wireCases are encodings proto.Marshal cannot produce (or rarely does):
// built field by field.
func wireCases(t testing.TB) map[string][]byte {
	t.Helper()
	tag := protowire.AppendTag
	str := func(b []byte, n protowire.Number, s string) []byte {
		return protowire.AppendString(tag(b, n, protowire.BytesType), s)
	}
	msg := func(b []byte, n protowire.Number, inner []byte) []byte {
		return protowire.AppendBytes(tag(b, n, protowire.BytesType), inner)
	}
	entry := func(k, v string) []byte { return str(str(nil, 1, k), 2, v) }
	http := func(fields []byte) []byte {
		return msg(nil, 1, msg(nil, fAttrRequest, msg(nil, fRequestHTTP, fields)))
	}
	hv := func(k, v string, raw []byte) []byte {
		b := str(nil, 1, k)
		if v != "" {
			b = str(b, 2, v)
		}
		if raw != nil {
			b = msg(b, 3, raw)
		}
		return msg(nil, fHeaderMapHeaders, b)
	}
	withExt := func(http []byte, ext ...[2]string) []byte {
		attrs := msg(nil, fAttrRequest, msg(nil, fRequestHTTP, http))
		for _, e := range ext {
			attrs = msg(attrs, fAttrExtensions, entry(e[0], e[1]))
		}
		return msg(nil, 1, attrs)
	}
	base := str(str(nil, fHTTPMethod, "GET"), fHTTPPath, "/v1/x")
	good := marshal(t, envoyRequest())
	cases := map[string][]byte{
		"empty":                   nil,
		"envoy":                   good,
		"no attributes":           str(nil, 7, "x"),
		"no request":              msg(nil, 1, msg(nil, fAttrExtensions, entry("backend", "b"))),
		"no http":                 msg(nil, 1, msg(nil, fAttrRequest, nil)),
		"empty http":              http(nil),
		"duplicate headers":       http(msg(msg(base, fHTTPHeaders, entry("x-a", "1")), fHTTPHeaders, entry("x-a", "2"))),
		"upper-case headers":      http(msg(msg(msg(base, fHTTPHeaders, entry("X-A", "1")), fHTTPHeaders, entry("Authorization", "Bearer u")), fHTTPHeaders, entry(":Method", "put"))),
		"header map joins":        http(msg(msg(base, fHTTPHeaders, entry("x-a", "1")), fHTTPHeaderMap, append(append(hv("X-A", "2", nil), hv("authorization", "", []byte("Bearer r"))...), hv(":method", "DELETE", []byte("no"))...))),
		"header map only":         http(msg(base, fHTTPHeaderMap, append(hv("Host", "h.example", nil), hv("x-b", "", nil)...))),
		"raw value not utf-8":     http(msg(base, fHTTPHeaderMap, hv("x-b", "", []byte("a\xffb")))),
		"two raw not utf-8":       http(msg(base, fHTTPHeaderMap, append(hv("x-b", "", []byte("\xff")), hv("x-c", "", []byte("\xfe"))...))),
		"empty values join":       http(msg(msg(base, fHTTPHeaders, entry("x-a", "")), fHTTPHeaderMap, append(hv("x-a", "", nil), hv("x-a", "b", nil)...))),
		"header key not utf-8":    http(msg(base, fHTTPHeaders, entry("x-\xff", "1"))),
		"header value not utf-8":  http(msg(base, fHTTPHeaders, entry("x-a", "\xc3"))),
		"path not utf-8":          http(str(base, fHTTPPath, "/\xff")),
		"method not utf-8":        http(str(nil, fHTTPMethod, "G\xffT")),
		"map key not utf-8":       http(msg(base, fHTTPHeaderMap, hv("k\xff", "v", nil))),
		"deep not utf-8":          msg(http(base), 1, msg(nil, 2, str(nil, 7, "principal\xff"))),
		"no http but not utf-8":   msg(nil, 1, msg(nil, 2, str(nil, 7, "\xff"))),
		"marker sent":             withExt(base, [2]string{ContextExtensionInvalidUTF8, "sent"}),
		"backend twice":           withExt(msg(base, fHTTPHeaders, entry(HeaderBackend, "other")), [2]string{"backend", "ai_gateway"}),
		"backend header agrees":   withExt(msg(base, fHTTPHeaders, entry(HeaderBackend, "ai_gateway")), [2]string{"backend", "ai_gateway"}),
		"extension last wins":     withExt(base, [2]string{"backend", "a"}, [2]string{"backend", "b"}, [2]string{"strip_prefix", "/x"}),
		"path as varint":          http(protowire.AppendVarint(tag(base, fHTTPPath, protowire.VarintType), 7)),
		"headers as varint":       http(protowire.AppendVarint(tag(base, fHTTPHeaders, protowire.VarintType), 7)),
		"http as fixed32":         msg(nil, 1, msg(nil, fAttrRequest, protowire.AppendFixed32(tag(nil, fRequestHTTP, protowire.Fixed32Type), 1))),
		"unknown everywhere":      msg(str(http(str(base, 99, "u")), 77, "x"), 1, msg(str(nil, 55, "y"), fAttrRequest, str(nil, 66, "z"))),
		"unknown group":           append(tag(tag(http(base), 20, protowire.StartGroupType), 20, protowire.EndGroupType), str(nil, 30, "x")...),
		"stray end group":         append(http(base), tag(nil, 20, protowire.EndGroupType)...),
		"field number zero":       append(http(base), 0x02, 0x00),
		"field number too large":  append(http(base), protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3|2)...),
		"truncated length":        append(http(base), 0x0a, 0x05, 0x01),
		"overlong varint":         append(http(base), 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"attributes twice":        append(http(str(nil, fHTTPMethod, "GET")), http(str(nil, fHTTPPath, "/merged"))...),
		"raw body":                http(msg(str(base, fHTTPBody, "b"), fHTTPRawBody, []byte(`{"x":1}`))),
		"partial body header":     http(msg(msg(base, fHTTPHeaders, entry(HeaderPartialBody, "true")), fHTTPHeaders, entry("content-length", "12"))),
		"query field":             http(str(str(nil, fHTTPPath, "/p"), fHTTPQuery, "?a=b")),
		"pseudo fallbacks":        http(msg(msg(msg(nil, fHTTPHeaders, entry(":method", "patch")), fHTTPHeaders, entry(":path", "/pp?q")), fHTTPHeaders, entry(":authority", "A.B"))),
		"packed size":             http(msg(base, 9, []byte{1, 2})),
		"size wrong type":         http(str(base, 9, "x")),
		"bad varint size":         http(append(tag(base, 9, protowire.VarintType), 0x80)),
		"unicode upper key":       http(msg(msg(base, fHTTPHeaders, entry("X-É", "1")), fHTTPHeaders, entry("x-é", "2"))),
		"request id from header":  http(msg(base, fHTTPHeaders, entry("x-request-id", "from-header"))),
		"socket then pipe":        sourceCase(msg, str, true, false),
		"pipe then socket":        sourceCase(msg, str, false, true),
		"socket twice merges":     sourceCase(msg, str, true, true),
		"socket, pipe, socket":    sourceCase3(msg, str),
		"authorization twice":     http(msg(msg(base, fHTTPHeaders, entry("authorization", "Bearer a")), fHTTPHeaders, entry("authorization", "Bearer b"))),
		"socket address as int":   append(http(base), msg(nil, 1, msg(nil, fAttrSource, msg(nil, fPeerAddress, protowire.AppendVarint(tag(nil, fAddressSocket, protowire.VarintType), 3))))...),
		"metadata not utf-8":      append(http(base), msg(nil, 1, msg(nil, 11, msg(nil, 1, append(str(nil, 1, "f"), msg(nil, 2, msg(nil, 1, append(str(nil, 1, "k"), msg(nil, 2, str(nil, 3, "\xff"))...)))...))))...),
		"extension as varint":     msg(nil, 1, append(msg(nil, fAttrRequest, msg(nil, fRequestHTTP, base)), protowire.AppendVarint(tag(nil, fAttrExtensions, protowire.VarintType), 1)...)),
		"extension entry unknown": withExt(base, [2]string{"backend", "a"}),
	}
	var many []byte
	for i := range 40 {
		k := []string{"x-a", "X-A", "authorization", ":method", "x-b", ":path", ":authority", "host"}[i%8]
		v := []string{"", "1", "Bearer t", "", "v"}[i%5]
		many = append(many, hv(k, v, nil)...)
	}
	cases["many header_map values"] = http(msg(msg(base, fHTTPHeaders, entry("x-a", "base")), fHTTPHeaderMap, many))
	cases["many header_map values, upper-case map"] = http(msg(msg(msg(base, fHTTPHeaders, entry("X-B", "B")), fHTTPHeaders, entry("Authorization", "Bearer u")), fHTTPHeaderMap, many))
	var spellings []byte
	for i := range 64 {
		k := []byte("x-abcdef")
		for j := range 6 {
			if i&(1<<j) != 0 {
				k[2+j] -= 'a' - 'A'
			}
		}
		spellings = msg(spellings, fHTTPHeaders, entry(string(k), strings.Repeat("v", i%3)))
	}
	cases["64 spellings"] = http(append(base, spellings...))
	return cases
}

// TestDecodeJoinsLinear: many values of one header name (header_map, or
// spellings of the name in the headers map) are joined in linear time and
// memory, where joining one at a time would copy the growing value each
// time (gigabytes for a request within the 1 MiB limit).
func TestDecodeJoinsLinear(t *testing.T) {
	tag := protowire.AppendTag
	entry := func(n protowire.Number, k, v string) []byte {
		e := protowire.AppendString(tag(protowire.AppendString(tag(nil, 1, protowire.BytesType), k), 2, protowire.BytesType), v)
		return protowire.AppendBytes(tag(nil, n, protowire.BytesType), e)
	}
	var hm, spell []byte
	const values, letters = 60000, 14
	for range values {
		hm = append(hm, entry(fHeaderMapHeaders, "x-a", "v")...)
	}
	for i := range 1 << letters {
		k := []byte("x-abcdefghijklmn")
		for j := range letters {
			if i&(1<<j) != 0 {
				k[2+j] -= 'a' - 'A'
			}
		}
		spell = append(spell, entry(fHTTPHeaders, string(k), "v")...)
	}
	wrap := func(http []byte) []byte {
		b := protowire.AppendBytes(tag(nil, fRequestHTTP, protowire.BytesType), http)
		b = protowire.AppendBytes(tag(nil, fAttrRequest, protowire.BytesType), b)
		return protowire.AppendBytes(tag(nil, 1, protowire.BytesType), b)
	}
	for name, c := range map[string]struct {
		data []byte
		key  string
		n    int
	}{
		"header_map": {wrap(protowire.AppendBytes(tag(nil, fHTTPHeaderMap, protowire.BytesType), hm)), "x-a", values},
		"spellings":  {wrap(spell), "x-abcdefghijklmn", 1 << letters},
	} {
		for _, path := range []struct {
			name   string
			decode func([]byte, *Request) error
		}{
			{"DecodeCheckRequest", DecodeCheckRequest},
			{"MapRequest", func(data []byte, r *Request) error {
				var req authv3.CheckRequest
				if err := UnmarshalCheckRequest(data, &req); err != nil {
					return err
				}
				return MapRequest(&req, r)
			}},
		} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var r Request
			if err := path.decode(c.data, &r); err != nil {
				t.Fatalf("%s, %s: %v", name, path.name, err)
			}
			runtime.ReadMemStats(&after)
			if got, want := r.Input.Headers[c.key], strings.TrimSuffix(strings.Repeat("v,", c.n), ","); got != want {
				t.Fatalf("%s, %s: joined value of %d bytes, want %d", name, path.name, len(got), len(want))
			}
			// The message and its map are a few MiB; joining one value at a
			// time copies gigabytes.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("%s, %s: decoding %d bytes allocated %d MiB: the joins are not linear", name, path.name, len(c.data), alloc>>20)
			}
		}
	}
}

// sourceCase builds attributes.source with socket_address and pipe in the
// given order (oneof: the last one set wins; two socket addresses merge).
func sourceCase(msg func([]byte, protowire.Number, []byte) []byte, str func([]byte, protowire.Number, string) []byte, first, second bool) []byte {
	one := func(socket bool, addr string) []byte {
		if socket {
			return msg(nil, fAddressSocket, protowire.AppendVarint(protowire.AppendTag(str(nil, fSocketAddressAddress, addr), 3, protowire.VarintType), 80))
		}
		return msg(nil, fAddressPipe, str(nil, 1, "/pipe"))
	}
	addr := append(one(first, "10.0.0.1"), one(second, "")...)
	if first && second {
		addr = append(one(true, "10.0.0.1"), msg(nil, fAddressSocket, protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 81))...)
	}
	attrs := msg(msg(nil, fAttrSource, msg(nil, fPeerAddress, addr)), fAttrRequest, msg(nil, fRequestHTTP, str(nil, fHTTPPath, "/p")))
	return msg(nil, 1, attrs)
}

// sourceCase3 is a socket address, a pipe, then a socket address without
// an address: the oneof starts the second socket address afresh.
func sourceCase3(msg func([]byte, protowire.Number, []byte) []byte, str func([]byte, protowire.Number, string) []byte) []byte {
	addr := msg(nil, fAddressSocket, str(nil, fSocketAddressAddress, "10.0.0.1"))
	addr = msg(addr, fAddressPipe, str(nil, 1, "/pipe"))
	addr = msg(addr, fAddressSocket, protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 80))
	attrs := msg(msg(nil, fAttrSource, msg(nil, fPeerAddress, addr)), fAttrRequest, msg(nil, fRequestHTTP, str(nil, fHTTPPath, "/p")))
	return msg(nil, 1, attrs)
}

// TestDecodeMatchesMapRequest: on every edge case, every prefix of a full
// Envoy request and a few thousand seeded mutations of it, the decoder
// gives what UnmarshalCheckRequest and MapRequest give.
func TestDecodeMatchesMapRequest(t *testing.T) {
	cases := wireCases(t)
	for name, data := range cases {
		if diff := sameDecode(data); diff != "" {
			t.Errorf("%s: %s", name, diff)
		}
	}
	good := cases["envoy"]
	for i := range good {
		if diff := sameDecode(good[:i]); diff != "" {
			t.Fatalf("prefix of %d bytes: %s", i, diff)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		b := slices.Clone(good)
		for range 1 + rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			case 1:
				b[rng.IntN(len(b))] ^= 0x80
			default:
				at := rng.IntN(len(b))
				b = append(b[:at], b[min(len(b), at+1+rng.IntN(8)):]...)
			}
			if len(b) == 0 {
				break
			}
		}
		if diff := sameDecode(b); diff != "" {
			t.Fatalf("mutation %d (%x): %s", i, b, diff)
		}
	}
}

// TestDecodeDepth: metadata nested around protobuf-go's recursion limit is
// refused exactly where proto.Unmarshal refuses it.
func TestDecodeDepth(t *testing.T) {
	refused := 0
	var v, st []byte
	level := func() {
		// Value{struct_value: Struct{fields: {"a": v}}}
		entry := protowire.AppendBytes(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a"), 2, protowire.BytesType), v)
		st = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), entry)
		v = protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), st)
	}
	for range 3330 {
		level()
	}
	for levels := 3331; levels <= 3334; levels++ { // the limit falls at 3333
		level()
		meta := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "f"), 2, protowire.BytesType), st))
		attrs := protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), meta)
		data := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), attrs)
		if diff := sameDecode(data); diff != "" {
			t.Fatalf("%d levels: %s", levels, diff)
		}
		if proto.Unmarshal(data, &authv3.CheckRequest{}) != nil {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("the levels tried do not straddle the limit (%d of 4 refused, want 2)", refused)
	}
}

// FuzzDecodeCheckRequest: for any bytes, DecodeCheckRequest gives what the
// reference path (UnmarshalCheckRequest, MapRequest) gives, and never
// panics.
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, data := range wireCases(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if diff := sameDecode(data); diff != "" {
			t.Fatal(diff)
		}
	})
}

// TestDecodeCopies: nothing in the decoded request shares memory with the
// request bytes, which the gRPC transport reuses once decoding returns.
func TestDecodeCopies(t *testing.T) {
	req := envoyRequest()
	req.Attributes.Request.Http.RawBody = []byte(`{"raw":true}`)
	req.Attributes.Request.Http.Headers["x-odd-name"] = "odd value"
	data := marshal(t, req)
	var r Request
	if err := DecodeCheckRequest(data, &r); err != nil {
		t.Fatal(err)
	}
	before, body := fmtRequest(r), string(r.Body.Data)
	for i := range data {
		data[i] = 'X'
	}
	if after := fmtRequest(r); after != before || string(r.Body.Data) != body {
		t.Fatalf("the decoded request changed with the bytes:\nbefore %s %s\nafter  %s %s", before, body, after, r.Body.Data)
	}
	if body != `{"raw":true}` || r.Input.Headers["x-odd-name"] != "odd value" {
		t.Fatalf("decoded %q, %q", body, r.Input.Headers["x-odd-name"])
	}
}

// TestPooledDecoderKeepsNothing: once Decode returns, a (pooled) decoder
// holds none of the request: not its strings (the body up to its limit),
// nor header scratch grown past maxPooledHeaders by one request.
func TestPooledDecoderKeepsNothing(t *testing.T) {
	req := envoyRequest()
	req.Attributes.Request.Http.Body = "a body the decoder must not keep"
	for i := range 2 * maxPooledHeaders {
		req.Attributes.Request.Http.Headers[fmt.Sprintf("x-h-%d", i)] = "v"
	}
	var cd CheckDecoder
	var r Request
	if err := cd.Decode(marshal(t, req), &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Body.Data) != req.Attributes.Request.Http.Body {
		t.Fatalf("body %q", r.Body.Data)
	}
	d := &cd.d
	if d.body != "" || d.path != "" || d.id != "" || d.host != "" || cap(d.headers) > maxPooledHeaders {
		t.Fatalf("the decoder kept the request: body %q, path %q, id %q, host %q, %d header slots",
			d.body, d.path, d.id, d.host, cap(d.headers))
	}
}
