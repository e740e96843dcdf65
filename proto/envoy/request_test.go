package envoy

import (
	"errors"
	"maps"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

func checkRequest(h *authv3.AttributeContext_HttpRequest, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: h},
		ContextExtensions: ext,
	}}
}

func TestMapRequest(t *testing.T) {
	tests := []struct {
		name    string
		http    *authv3.AttributeContext_HttpRequest
		ext     map[string]string
		want    Request
		headers map[string]string
	}{
		{
			name: "envoy fields and lower-case headers",
			http: &authv3.AttributeContext_HttpRequest{
				Id: "req-1", Method: "POST", Path: "/v2/code/completions?a=1&b=2", Host: "Cloud.GitLab.com",
				Headers: map[string]string{
					":method": "POST", ":path": "/v2/code/completions?a=1&b=2", ":authority": "cloud.gitlab.com",
					"authorization": "Bearer abc", "x-gitlab-realm": "saas",
					"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				},
			},
			ext: map[string]string{"backend": "ai_gateway"},
			want: Request{
				Authorization: "Bearer abc", Backend: "ai_gateway", RequestID: "req-1",
				TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			},
			headers: map[string]string{
				"x-gitlab-realm": "saas",
				"traceparent":    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			},
		},
		{
			name: "pseudo headers fill missing fields; upper-case names folded",
			http: &authv3.AttributeContext_HttpRequest{
				Headers: map[string]string{
					":method": "get", ":path": "/v1/x", ":authority": "Example.test:8443",
					"Authorization": "Bearer T", "X-Gitlab-Instance-Id": "i-1", "X-Request-Id": "rid",
				},
			},
			want:    Request{Authorization: "Bearer T", RequestID: "rid"},
			headers: map[string]string{"x-gitlab-instance-id": "i-1", "x-request-id": "rid"},
		},
		{
			name: "two spellings of authorization are joined, never chosen",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
				Headers: map[string]string{"Authorization": "Bearer A", "authorization": "Bearer A"}},
			want:    Request{Authorization: "Bearer A,Bearer A"},
			headers: map[string]string{},
		},
		{
			name: "header_map (encode_raw_headers) with raw values",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/p?q",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					{Key: "X-A", RawValue: []byte("1")}, {Key: "authorization", RawValue: []byte("Bearer R")},
				}}},
			want:    Request{Authorization: "Bearer R"},
			headers: map[string]string{"x-a": "1"},
		},
	}
	wantInput := map[string][4]string{ // method, path, query, host
		"envoy fields and lower-case headers":                         {"POST", "/v2/code/completions", "a=1&b=2", "cloud.gitlab.com"},
		"pseudo headers fill missing fields; upper-case names folded": {"GET", "/v1/x", "", "example.test:8443"},
		"two spellings of authorization are joined, never chosen":     {"GET", "/", "", ""},
		"header_map (encode_raw_headers) with raw values":             {"GET", "/p", "q", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if err := MapRequest(checkRequest(tc.http, tc.ext), &r); err != nil {
				t.Fatal(err)
			}
			if r.Authorization != tc.want.Authorization || r.Backend != tc.want.Backend ||
				r.RequestID != tc.want.RequestID || r.TraceParent != tc.want.TraceParent {
				t.Errorf("got auth=%q backend=%q id=%q tp=%q, want %+v", r.Authorization, r.Backend, r.RequestID, r.TraceParent, tc.want)
			}
			w := wantInput[tc.name]
			got := [4]string{r.Input.Method, r.Input.Path, r.Input.Query, r.Input.Host}
			if got != w {
				t.Errorf("method/path/query/host = %q, want %q", got, w)
			}
			if !maps.Equal(r.Input.Headers, tc.headers) {
				t.Errorf("headers = %v, want %v", r.Input.Headers, tc.headers)
			}
		})
	}
}

func TestMapRequestWithoutHTTP(t *testing.T) {
	for _, req := range []*authv3.CheckRequest{nil, {}, {Attributes: &authv3.AttributeContext{}}} {
		var r Request
		if err := MapRequest(req, &r); !errors.Is(err, ErrNoHTTPRequest) {
			t.Errorf("MapRequest(%v) = %v, want ErrNoHTTPRequest", req, err)
		}
	}
}

func TestSplitPath(t *testing.T) {
	for in, want := range map[string][2]string{
		"":            {"/", ""},
		"/a":          {"/a", ""},
		"/a?":         {"/a", ""},
		"/a?b=1?c":    {"/a", "b=1?c"},
		"?x":          {"/", "x"},
		"/a#f?notq":   {"/a#f", "notq"},
		"/a?q=1#frag": {"/a", "q=1#frag"},
	} {
		p, q := SplitPath(in)
		if p != want[0] || q != want[1] {
			t.Errorf("SplitPath(%q) = %q, %q; want %q, %q", in, p, q, want[0], want[1])
		}
	}
}

// FuzzMapRequest checks the mapping's invariants on arbitrary requests: it
// never panics, no header name is upper-case or a pseudo header, the
// authorization header never reaches the policy input, and the path never
// carries a query or fragment.
func FuzzMapRequest(f *testing.F) {
	f.Add("POST", "/v2/code/completions?x=1", "cloud.gitlab.com", "Authorization", "Bearer x", ":path", "/y", "backend")
	f.Add("", "", "", "AUTHORIZATION", "", ":authority", "H:1", "")
	f.Add("get", "#?", "h", "X-Ä", "\xff", "authorization", "Bearer a", "b")
	f.Add("POST", "/v4/code/suggestions", "h", "X-Envoy-Auth-Partial-Body", "true", "content-length", "12", "ai_gateway")
	f.Fuzz(func(t *testing.T, method, path, host, k1, v1, k2, v2, backend string) {
		req := checkRequest(&authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: host,
			Headers: map[string]string{k1: v1, k2: v2},
		}, map[string]string{"backend": backend})
		var r Request
		if err := MapRequest(req, &r); err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("MapRequest: %v is not a *BadRequestError", err)
			}
			return
		}
		if err := r.CanonicalPath(requestpath.Default()); err != nil {
			var bad *requestpath.Error
			if !errors.As(err, &bad) {
				t.Fatalf("CanonicalPath: %v is not a *requestpath.Error", err)
			}
			return
		}
		for k := range r.Input.Headers {
			if k != strings.ToLower(k) || strings.HasPrefix(k, ":") || k == "authorization" || k == HeaderPartialBody {
				t.Fatalf("header %q leaked into the input", k)
			}
		}
		if strings.ContainsAny(r.Input.Path, "?#") || r.Input.Path == "" {
			t.Fatalf("path %q carries a query or fragment", r.Input.Path)
		}
		if canon, err := requestpath.Default().Path(r.Input.Path); err != nil || canon != r.Input.Path {
			t.Fatalf("path %q is not canonical: %q, %v", r.Input.Path, canon, err)
		}
		if strings.EqualFold(k1, "authorization") && v1 != "" && !strings.Contains(r.Authorization, v1) {
			t.Fatalf("authorization %q lost (got %q)", v1, r.Authorization)
		}
		if r.Backend != backend {
			t.Fatalf("backend = %q, want %q", r.Backend, backend)
		}
		// Whatever the policy copies from the request into the answer,
		// the CheckResponse encodes.
		for _, allow := range []bool{true, false} {
			d := policy.Decision{Allow: allow, Status: 403, Route: r.Input.Path, Reason: policy.Reason(r.Input.Query),
				Headers: r.Input.Headers, ResponseHeaders: r.Input.Headers, Body: map[string]any{"error": r.Input.Host},
				RateLimit: policy.RateLimit{Entries: r.Input.Headers}}
			resp := NewResponder().Response(&Outcome{Decision: &d, DecisionID: r.RequestID, RateLimited: r.Input.Method})
			if _, err := proto.Marshal(resp); err != nil {
				t.Fatalf("CheckResponse does not marshal: %v", err)
			}
		}
	})
}

func TestStripPrefix(t *testing.T) {
	cases := []struct{ path, prefix, want string }{
		{"/ai/v2/code/completions", "/ai", "/v2/code/completions"},
		{"/ai/v2/code/completions", "/ai/", "/v2/code/completions"},
		{"/ai", "/ai", "/"},
		{"/aix/v1", "/ai", "/aix/v1"},
		{"/v2/code/completions", "/ai", "/v2/code/completions"},
		{"/v2/code/completions", "", "/v2/code/completions"},
	}
	for _, c := range cases {
		if got := StripPrefix(c.path, c.prefix); got != c.want {
			t.Errorf("StripPrefix(%q, %q) = %q, want %q", c.path, c.prefix, got, c.want)
		}
	}
}

func TestMapRequestStripsRoutePrefix(t *testing.T) {
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"backend": "ai_gateway", "strip_prefix": "/ai"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: "/ai/v2/code/completions?x=1", Headers: map[string]string{},
		}},
	}}
	var r Request
	if err := MapRequest(req, &r); err != nil {
		t.Fatal(err)
	}
	if err := r.CanonicalPath(requestpath.Default()); err != nil {
		t.Fatal(err)
	}
	if r.Input.Path != "/v2/code/completions" || r.Input.Query != "x=1" {
		t.Fatalf("path %q query %q", r.Input.Path, r.Input.Query)
	}
}

// TestCanonicalPathStripsPrefixAfterwards: the prefix is stripped from the
// canonical path, so dot segments and escapes cannot smuggle a path out
// from under it or hide the prefix.
func TestCanonicalPathStripsPrefixAfterwards(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"/ai/v2/code/completions", "/v2/code/completions"},
		{"/ai/../v2/code/generations", "/v2/code/generations"}, // not under /ai: judged whole, finds no route
		{"/%61i/v2/code/completions", "/v2/code/completions"},
		{"/ai/./x/../v2//code/completions", "/v2/code/completions"},
		{"//ai/v2/code/completions", "/v2/code/completions"},
		{"/aix/v2", "/aix/v2"},
	}
	for _, c := range cases {
		r := Request{RawPath: c.raw, StripPrefix: "/ai"}
		if err := r.CanonicalPath(requestpath.Default()); err != nil || r.Input.Path != c.want {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q", c.raw, r.Input.Path, err, c.want)
		}
	}
	r := Request{RawPath: "/ai/%2e%2e%2fv2", StripPrefix: "/ai"}
	var perr *requestpath.Error
	if err := r.CanonicalPath(requestpath.Default()); !errors.As(err, &perr) || perr.Problem != requestpath.ProblemEncodedSlash {
		t.Errorf("encoded slash: %v", err)
	}
}

func TestMapRequestRefuses(t *testing.T) {
	cases := []struct {
		name string
		http *authv3.AttributeContext_HttpRequest
		ext  map[string]string
		want string
	}{
		{
			name: "invalid UTF-8 in a raw header value",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "X-Gitlab-Instance-Id", RawValue: []byte("i-\xff\xfe")}}}},
			want: `header "x-gitlab-instance-id" is not valid UTF-8`,
		},
		{
			name: "backend header disagrees with the context extension",
			http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"x-ccauthz-backend": "other"}},
			ext:  map[string]string{"backend": "ai_gateway"},
			want: `the backend is named twice, differently (context extension "backend" and header x-ccauthz-backend)`,
		},
	}
	for _, tc := range cases {
		var r Request
		err := MapRequest(checkRequest(tc.http, tc.ext), &r)
		var bad *BadRequestError
		if !errors.As(err, &bad) || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// The same name twice is not ambiguous.
	var r Request
	req := checkRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{"x-ccauthz-backend": "ai_gateway"}},
		map[string]string{"backend": "ai_gateway"})
	if err := MapRequest(req, &r); err != nil {
		t.Errorf("agreeing backend header: %v", err)
	}
}
