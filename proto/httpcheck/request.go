package httpcheck

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// Header and query names of the HTTP check protocols.
const (
	// HeaderBackend names the protected backend of a check; the gateway sets
	// it (nginx proxy_set_header, Envoy headers_to_add).
	HeaderBackend = "X-Ccauthz-Backend"
	// QueryBackend is the query parameter of the auth endpoints and the JSON
	// API that names the backend (set in the gateway's auth URL).
	QueryBackend = "backend"
	// HeaderStatus, HeaderBody: the real status and JSON body of a denial
	// answered to nginx as 401/403.
	HeaderStatus = "X-Ccauthz-Status"
	HeaderBody   = "X-Ccauthz-Body"
	// HeaderDecisionID carries the decision id on every answer.
	HeaderDecisionID = "X-Ccauthz-Decision-Id"
	// HeaderPath carries, on every allow, the canonical path the policy
	// judged (docs/request-path.md); the shipped nginx and Caddy configs
	// forward exactly it.
	HeaderPath = "X-Ccauthz-Path"
	// HeaderEnvoyRemove lists, on an Envoy http_service allow, the request
	// headers Envoy must remove before forwarding upstream.
	HeaderEnvoyRemove = "X-Envoy-Auth-Headers-To-Remove"

	headerOriginalURI     = "X-Original-Uri"
	headerOriginalMethod  = "X-Original-Method"
	headerForwardedMethod = "X-Forwarded-Method"
	headerForwardedURI    = "X-Forwarded-Uri"
	headerForwardedHost   = "X-Forwarded-Host"

	// reservedPrefix: request headers under it are ccauthz's own; they are
	// never given to the policy, so a client cannot forge them.
	reservedPrefix = "x-ccauthz-"
	// maxBackendName bounds a backend name read from a request.
	maxBackendName = 64
)

// Error is a malformed check request. Status is 400, or 413 for a JSON
// request body over the limit; Message is safe to return to the caller (it
// never quotes a header value).
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// ValidateEnvoyPathPrefix checks an http_service path prefix: "/" and more,
// no trailing slash, no query, space or control character, and not the
// other endpoints' /v1 (checks under it would be ambiguous).
func ValidateEnvoyPathPrefix(p string) error {
	switch {
	case len(p) < 2 || p[0] != '/':
		return fmt.Errorf("envoy path prefix %q must start with / and name a path", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("envoy path prefix %q must not end with /", p)
	case strings.ContainsAny(p, "?#%") || strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return fmt.Errorf("envoy path prefix %q must not contain ?, #, %%, spaces or control characters", p)
	case p == "/v1" || strings.HasPrefix(p, "/v1/"):
		return fmt.Errorf("envoy path prefix %q overlaps the /v1 check endpoints", p)
	}
	return nil
}

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// StatusOf returns the HTTP status of a mapping error: the *Error's, else 400.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusBadRequest
}

// MapEnvoy maps a check from Envoy's ext_authz http_service: the request
// arrives at prefix + the original path (with its query) under the original
// method, with the original headers and Host. The backend comes only from
// the X-Ccauthz-Backend header (the query belongs to the original request).
// With with_request_body, Envoy sends the buffered body as the check's body
// and adds X-Envoy-Auth-Partial-Body; at most maxBody+1 bytes of it are read
// (more is too_large).
func MapEnvoy(r *http.Request, prefix string, maxBody int64, dst *envoy.Request) error {
	*dst = envoy.Request{}
	target, ok := strings.CutPrefix(r.RequestURI, prefix)
	if !ok || (target != "" && target[0] != '/' && target[0] != '?') {
		return badRequest("the check path must start with %s followed by the original path", prefix)
	}
	if target == "" || target[0] == '?' {
		target = "/" + target
	}
	hb, err := headerBackend(r)
	if err != nil {
		return err
	}
	backend, err := backendName(hb, "")
	if err != nil {
		return err
	}
	if err := fill(dst, r, r.Method, target, r.Host, backend); err != nil {
		return err
	}
	return readBody(r, maxBody, dst)
}

// readBody reads the body of a check whose gateway forwards the original
// request's body (Envoy http_service with with_request_body, Traefik
// forwardBody), bounded by maxBody+1 bytes. The check request's own
// Content-Length describes what the gateway sent, not the original request,
// so only Envoy's partial-body header can say the body was cut.
func readBody(r *http.Request, maxBody int64, dst *envoy.Request) error {
	headers := dst.Input.Headers
	partial, sent := headers[envoy.HeaderPartialBody]
	delete(headers, envoy.HeaderPartialBody)
	b := envoy.Body{DeclaredLength: -1, Present: sent, Partial: sent && envoy.PartialBody(partial)}
	if r.Body != nil && r.ContentLength != 0 {
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return badRequest("reading the forwarded request body failed")
		}
		b.Data = data
		b.Present = b.Present || len(data) > 0
	}
	dst.Body = b
	return nil
}

// MapNginx maps an nginx auth_request subrequest: the original request
// target in X-Original-URI, its method in X-Original-Method and its host in
// X-Forwarded-Host (else Host). The backend is X-Ccauthz-Backend or
// ?backend= (both set must agree). auth_request never carries the original
// body, so the body is always absent (a route that needs it fails closed).
func MapNginx(r *http.Request, dst *envoy.Request) error {
	*dst = envoy.Request{}
	return mapProxied(r, dst, headerOriginalMethod, headerOriginalURI)
}

// MapForward maps a forward-auth request (Caddy forward_auth, Traefik
// ForwardAuth): X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host (else
// Host). The backend is X-Ccauthz-Backend or ?backend= (both set must agree).
//
// Caddy's forward_auth sends no body (absent); Traefik sends one with
// forwardBody: true, read here up to maxBody+1 bytes.
func MapForward(r *http.Request, maxBody int64, dst *envoy.Request) error {
	*dst = envoy.Request{}
	if err := mapProxied(r, dst, headerForwardedMethod, headerForwardedURI); err != nil {
		return err
	}
	return readBody(r, maxBody, dst)
}

func mapProxied(r *http.Request, dst *envoy.Request, methodHeader, uriHeader string) error {
	method, target := r.Header.Get(methodHeader), r.Header.Get(uriHeader)
	if method == "" {
		return badRequest("header %s is required", methodHeader)
	}
	if target == "" {
		return badRequest("header %s is required", uriHeader)
	}
	host := r.Header.Get(headerForwardedHost)
	if host == "" {
		host = r.Host
	}
	hb, err := headerBackend(r)
	if err != nil {
		return err
	}
	backend, err := backendName(hb, r.URL.Query().Get(QueryBackend))
	if err != nil {
		return err
	}
	if err := fill(dst, r, method, target, host, backend); err != nil {
		return err
	}
	// The request line of the original request, not one of its headers.
	delete(dst.Input.Headers, strings.ToLower(methodHeader))
	delete(dst.Input.Headers, strings.ToLower(uriHeader))
	return nil
}

// fill validates the original request line and host and maps the headers.
func fill(dst *envoy.Request, r *http.Request, method, target, host, backend string) error {
	if err := checkMethod(method); err != nil {
		return err
	}
	if err := checkTarget(target); err != nil {
		return err
	}
	if err := checkHost(host); err != nil {
		return err
	}
	dst.Backend = backend
	in := &dst.Input
	in.Method = strings.ToUpper(method)
	in.Path, in.Query = envoy.SplitPath(target)
	dst.RawPath = in.Path
	in.Host = strings.ToLower(host)
	in.Headers = make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		v := strings.Join(vs, ",")
		switch {
		case lk == "authorization":
			dst.Authorization = v
		case strings.HasPrefix(lk, reservedPrefix):
		default:
			in.Headers[lk] = v
		}
	}
	if err := envoy.CheckHeaderValues(in.Headers); err != nil {
		return badRequest("%v", err)
	}
	dst.TraceParent = in.Headers["traceparent"]
	dst.RequestID = in.Headers["x-request-id"]
	return nil
}

// headerBackend is the X-Ccauthz-Backend header; sent more than once with
// different names it is a 400 (the first one never wins).
func headerBackend(r *http.Request) (string, error) {
	vs := r.Header.Values(HeaderBackend)
	for _, v := range vs[min(1, len(vs)):] {
		if v != vs[0] {
			return "", badRequest("header %s is sent more than once, with different backends", HeaderBackend)
		}
	}
	if len(vs) == 0 {
		return "", nil
	}
	return vs[0], nil
}

// backendName picks the backend named by the sources that are set; two
// that disagree are an error (ambiguity never picks a backend).
func backendName(sources ...string) (string, error) {
	name := ""
	for _, s := range sources {
		switch {
		case s == "":
		case !isBackendName(s):
			return "", badRequest("the backend name must be snake_case (a-z, 0-9, _) and at most %d characters", maxBackendName)
		case name != "" && s != name:
			return "", badRequest("the backend is named twice, differently (%s and ?%s=)", HeaderBackend, QueryBackend)
		default:
			name = s
		}
	}
	return name, nil
}

func isBackendName(s string) bool {
	if len(s) > maxBackendName || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// checkMethod accepts an HTTP method token (RFC 9110 tchar).
func checkMethod(m string) error {
	if m == "" || len(m) > 32 {
		return badRequest("the original method must be 1 to 32 characters")
	}
	for i := 0; i < len(m); i++ {
		if !isTchar(m[i]) {
			return badRequest("the original method is not an HTTP method token")
		}
	}
	return nil
}

// checkTarget accepts an origin-form request target: "/" then no space or
// control character.
func checkTarget(t string) error {
	if t == "" || t[0] != '/' {
		return badRequest("the original URI must start with /")
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return badRequest("the original URI contains a space or control character")
		}
	}
	return nil
}

// checkHost accepts a host[:port] without spaces, control characters or
// URL delimiters.
func checkHost(h string) error {
	if len(h) > 255 {
		return badRequest("the original host is longer than 255 characters")
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '@' {
			return badRequest("the original host is not a host name")
		}
	}
	if !utf8.ValidString(h) {
		return badRequest("the original host is not valid UTF-8")
	}
	return nil
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
