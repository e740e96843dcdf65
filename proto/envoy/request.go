package envoy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// ContextExtensionBackend is the context_extensions key that names the
// protected backend of a route (set per route in Envoy's ext_authz filter).
const ContextExtensionBackend = "backend"

// ContextExtensionStripPrefix is the context_extensions key a route sets when
// it strips a path prefix on the way upstream (Envoy's prefix_rewrite runs in
// the router, after ext_authz has seen the original path): the policy then
// matches the path the backend will see, e.g. /ai/v2/code/completions →
// /v2/code/completions.
const ContextExtensionStripPrefix = "strip_prefix"

// ErrNoHTTPRequest is returned for a CheckRequest without
// attributes.request.http: ccauthz only authorizes HTTP requests.
var ErrNoHTTPRequest = errors.New("check request has no attributes.request.http")

// HeaderBackend is the request header the HTTP check modes read the
// backend from. On the gRPC path the route's context extension names the
// backend; a header that names another one is a 400, never "first wins".
const HeaderBackend = "x-ccauthz-backend"

// BadRequestError is a CheckRequest ccauthz refuses to decide on (a 400
// bad_request). Its message names the problem and never quotes a value.
type BadRequestError struct{ Message string }

func (e *BadRequestError) Error() string { return e.Message }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Message: fmt.Sprintf(format, args...)}
}

// Request is what one CheckRequest says, mapped for the decision path.
type Request struct {
	// Input is the policy input, without Backend and Token (the server fills
	// them once it has chosen the backend and verified the token).
	Input policy.Input
	// Authorization is the raw Authorization header value, "" when absent. It
	// is never copied into Input.Headers.
	Authorization string
	// Backend is context_extensions["backend"], "" when unset.
	Backend string
	// TraceParent is the W3C traceparent header, "" when absent.
	TraceParent string
	// RequestID is Envoy's request id (attributes.request.http.id), falling
	// back to the x-request-id header.
	RequestID string
	// SourceAddress is the downstream client's IP address as the proxy saw
	// it (attributes.source), "" when unknown. The rate limiter keys
	// authentication failures on it when there is no instance id header.
	SourceAddress string
	// RawPath is the path as received (query split off), before
	// CanonicalPath; the decision log keeps it next to the canonical one.
	RawPath string
	// StripPrefix is the route's strip_prefix context extension, removed
	// from the canonical path by CanonicalPath.
	StripPrefix string
	// Body is the request body the check carried, not yet decoded: the
	// server decodes it once (DecodeBody) into Input.Body. Never logged.
	Body Body
}

// CanonicalPath sets Input.Path to the canonical form of RawPath
// (proto/requestpath) with StripPrefix removed, and checks the raw query.
// Every protocol's request goes through it before the decision. The prefix
// is stripped after canonicalising, so "/ai/../v2/x" cannot pass as a path
// under /ai, and a prefix spelled with escapes or dot segments is no
// different from the plain one.
func (r *Request) CanonicalPath(o requestpath.Options) error {
	p, err := o.Path(r.RawPath)
	if err != nil {
		return err
	}
	if err := requestpath.Query(r.Input.Query); err != nil {
		return err
	}
	r.Input.Path = StripPrefix(p, r.StripPrefix)
	return nil
}

// CheckHeaderValues refuses a header value that is not valid UTF-8 (obs-text,
// Envoy's header_map raw_value): the policy input and every answer built
// from it must be UTF-8, or the CheckResponse cannot be encoded.
func CheckHeaderValues(h map[string]string) error {
	for k, v := range h {
		if !utf8.ValidString(v) {
			return badRequest("header %s is not valid UTF-8", headerName(k))
		}
	}
	return nil
}

// headerName is a header name fit for an error message: valid UTF-8 and at
// most 64 bytes.
func headerName(k string) string {
	k = strings.ToValidUTF8(k, "?")
	if len(k) > 64 {
		k = strings.ToValidUTF8(k[:64], "") + "..."
	}
	return fmt.Sprintf("%q", k)
}

// MapRequest fills r from req. It takes ownership of the request's header
// map: the map is normalised in place (lower-cased names, pseudo headers and
// authorization removed) and becomes r.Input.Headers, which saves copying
// every header on the hot path. The caller must not use req's headers
// afterwards. Missing fields fall back to the HTTP/2 pseudo headers Envoy also
// sends (:method, :path, :authority).
func MapRequest(req *authv3.CheckRequest, r *Request) error {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return ErrNoHTTPRequest
	}
	*r = Request{}
	if field, ok := attrs.GetContextExtensions()[ContextExtensionInvalidUTF8]; ok {
		return badRequest("the check request has a string that is not valid UTF-8 (in %s)", field)
	}
	r.Backend = attrs.GetContextExtensions()[ContextExtensionBackend]
	r.SourceAddress = attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()

	headers := h.GetHeaders()
	if headers == nil {
		headers = make(map[string]string, len(h.GetHeaderMap().GetHeaders()))
	}
	// header_map is what Envoy sends when encode_raw_headers is on; merge it,
	// each name's values joined once (joinAll: many values of one name must
	// not cost quadratic time).
	if hm := h.GetHeaderMap().GetHeaders(); len(hm) > 0 {
		values := make(map[string][]string, len(hm))
		for _, hv := range hm {
			v := hv.GetValue()
			if v == "" && len(hv.GetRawValue()) > 0 {
				v = string(hv.GetRawValue())
			}
			k := strings.ToLower(hv.GetKey())
			values[k] = append(values[k], v)
		}
		for k, vs := range values {
			headers[k] = joinAll(headers[k], vs)
		}
	}

	var method, path, authority string
	var names [64]string // on the stack for the usual request
	keys := names[:0]
	for k := range headers {
		keys = append(keys, k)
	}
	r.Authorization, method, path, authority = foldHeaders(headers, keys)
	r.TraceParent = headers["traceparent"]
	if err := CheckHeaderValues(headers); err != nil {
		return err
	}
	if hb, ok := headers[HeaderBackend]; ok && r.Backend != "" && hb != r.Backend {
		return badRequest("the backend is named twice, differently (context extension %q and header %s)", ContextExtensionBackend, HeaderBackend)
	}

	in := &r.Input
	in.Method = strings.ToUpper(firstNonEmpty(h.GetMethod(), method))
	in.Host = strings.ToLower(firstNonEmpty(h.GetHost(), authority, headers["host"]))
	in.Path, in.Query = SplitPath(firstNonEmpty(h.GetPath(), path))
	r.RawPath = in.Path
	r.StripPrefix = attrs.GetContextExtensions()[ContextExtensionStripPrefix]
	if in.Query == "" && h.GetQuery() != "" {
		in.Query = strings.TrimPrefix(h.GetQuery(), "?")
	}
	in.Headers = headers
	r.RequestID = firstNonEmpty(h.GetId(), headers["x-request-id"])
	r.Body = EnvoyBody(h.GetRawBody(), h.GetBody(), headers)
	return nil
}

// addHeader sets h[k] = v, joining with "," when k is already present (how
// Envoy folds repeated headers).
func addHeader(h map[string]string, k, v string) {
	h[k] = joinHeader(h[k], v)
}

func joinHeader(old, v string) string {
	if old == "" {
		return v
	}
	return old + "," + v
}

// StripPrefix removes prefix from path when path starts with it at a segment
// boundary ("/ai" strips "/ai" and "/ai/x", not "/aix"); the result always
// starts with "/". Any other path is returned unchanged, so a route whose
// prefix does not match is judged on its full path (and finds no route).
func StripPrefix(path, prefix string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" || !strings.HasPrefix(path, prefix) {
		return path
	}
	rest := path[len(prefix):]
	switch {
	case rest == "":
		return "/"
	case rest[0] == '/':
		return rest
	default:
		return path
	}
}

// SplitPath splits a request target into its path and raw query (without
// '?'). A '#' stays where it is, for CanonicalPath to refuse (parsers
// disagree on fragments in a request target). An empty target becomes "/".
func SplitPath(target string) (path, query string) {
	path = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	if path == "" {
		path = "/"
	}
	return path, query
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
