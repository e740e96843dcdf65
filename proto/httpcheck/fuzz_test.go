package httpcheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/proto/envoy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// checkMapped asserts what every successful mapping guarantees, once the
// path is canonical (or refused with a *requestpath.Error).
func checkMapped(t *testing.T, r *envoy.Request) {
	t.Helper()
	if err := r.CanonicalPath(requestpath.Default()); err != nil {
		var perr *requestpath.Error
		if !errors.As(err, &perr) {
			t.Fatalf("CanonicalPath: %v is not a *requestpath.Error", err)
		}
		return
	}
	in := &r.Input
	if canon, err := requestpath.Default().Path(in.Path); err != nil || canon != in.Path {
		t.Fatalf("path %q is not canonical: %q, %v", in.Path, canon, err)
	}
	for k, v := range in.Headers {
		if !utf8.ValidString(v) || !utf8.ValidString(k) {
			t.Fatalf("header %q is not UTF-8", k)
		}
	}
	if in.Path == "" || in.Path[0] != '/' {
		t.Fatalf("path %q does not start with /", in.Path)
	}
	if strings.ContainsAny(in.Path+in.Query, " \r\n\x00") {
		t.Fatalf("path %q query %q carry a space or control character", in.Path, in.Query)
	}
	if in.Method == "" || in.Method != strings.ToUpper(in.Method) || !isToken(in.Method) {
		t.Fatalf("method %q", in.Method)
	}
	if in.Host != strings.ToLower(in.Host) || checkHost(in.Host) != nil {
		t.Fatalf("host %q", in.Host)
	}
	if r.Backend != "" && !isBackendName(r.Backend) {
		t.Fatalf("backend %q", r.Backend)
	}
	for k := range in.Headers {
		if k != strings.ToLower(k) || k == "authorization" || k == envoy.HeaderPartialBody || strings.HasPrefix(k, reservedPrefix) {
			t.Fatalf("header %q reached the input", k)
		}
	}
	if b := envoy.DecodeBody(r.Body, 1<<20); b.Status == policy.BodyOK && !json.Valid(r.Body.Data) {
		t.Fatalf("body ok but not JSON")
	}
}

// FuzzMapRequest reads arbitrary bytes as an HTTP/1.1 request and maps it
// in every mode: no panic, a 400/413 *Error or a well-formed input.
func FuzzMapRequest(f *testing.F) {
	f.Add([]byte("GET /v1/auth/nginx?backend=ai_gateway HTTP/1.1\r\nHost: ccauthz\r\nX-Original-URI: /v2/code/completions?x=1\r\nX-Original-Method: POST\r\nX-Forwarded-Host: cloud.gitlab.com\r\nAuthorization: Bearer a.b.c\r\nX-Ccauthz-Unit-Primitive: forged\r\n\r\n"))
	f.Add([]byte("POST /ext_authz/v2/code/completions?a=b HTTP/1.1\r\nHost: cloud.gitlab.com\r\nX-Ccauthz-Backend: ai_gateway\r\nX-Gitlab-Realm: saas\r\n\r\n"))
	f.Add([]byte("GET /v1/auth/forward HTTP/1.1\r\nHost: x\r\nX-Forwarded-Method: get\r\nX-Forwarded-Uri: /a b\r\nX-Ccauthz-Backend: Nope\r\n\r\n"))
	f.Add([]byte("GET /ext_authz HTTP/1.1\r\nHost: \r\n\r\n"))
	f.Add([]byte("POST /ext_authz/v4/code/suggestions HTTP/1.1\r\nHost: x\r\nX-Envoy-Auth-Partial-Body: true\r\nContent-Length: 9\r\n\r\n{\"a\":[1,"))
	f.Add([]byte("POST /v1/auth/forward HTTP/1.1\r\nHost: x\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: /v2/chat/agent\r\nContent-Length: 2\r\n\r\n{}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		modes := map[string]func(*http.Request, *envoy.Request) error{
			"envoy":   func(r *http.Request, d *envoy.Request) error { return MapEnvoy(r, "/ext_authz", 1<<20, d) },
			"nginx":   MapNginx,
			"forward": func(r *http.Request, d *envoy.Request) error { return MapForward(r, 1<<20, d) },
			"json":    func(r *http.Request, d *envoy.Request) error { return MapJSON(r, 1024, d) },
		}
		for name, m := range modes {
			var dst envoy.Request
			if err := m(req, &dst); err != nil {
				if s := StatusOf(err); s != 400 && s != 413 {
					t.Fatalf("%s: status %d for %v", name, s, err)
				}
				continue
			}
			checkMapped(t, &dst)
		}
	})
}

// FuzzDecodeCheckRequest: arbitrary JSON API bodies never panic and map to a
// well-formed input or a 400.
func FuzzDecodeCheckRequest(f *testing.F) {
	f.Add([]byte(`{"backend":"ai_gateway","method":"POST","path":"/v2/code/completions?x=1","host":"cloud.gitlab.com","headers":{"Authorization":"Bearer t","X-Gitlab-Realm":"saas"}}`))
	f.Add([]byte(`{"method":"GET","path":"/","headers":{"A":"1","a":"2"}}`))
	f.Add([]byte(`{"method":"GET","path":"/"} x`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"method":"POST","path":"/v2/chat/agent","body":{"messages":[{"additional_context":[{"category":"file"}]}]}}`))
	f.Add([]byte(`{"method":"POST","path":"/x","body_base64":"e30="}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/check", bytes.NewReader(body))
		var dst envoy.Request
		if err := MapJSON(r, 1<<20, &dst); err != nil {
			if StatusOf(err) != 400 {
				t.Fatalf("status %d for %v", StatusOf(err), err)
			}
			return
		}
		checkMapped(t, &dst)
		// The answer of any decision about it encodes.
		d := policy.Decision{Status: 403, Body: map[string]any{"error": dst.Input.Path}}
		w := httptest.NewRecorder()
		WriteNginx(w, &envoy.Outcome{Decision: &d, DecisionID: "x"})
		if strings.ContainsAny(w.Header().Get(HeaderBody), "\r\n") {
			t.Fatalf("X-Ccauthz-Body has a line break: %q", w.Header().Get(HeaderBody))
		}
	})
}
