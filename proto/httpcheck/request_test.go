package httpcheck

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

func TestMapEnvoy(t *testing.T) {
	tests := []struct {
		target, path, query string
		err                 string
	}{
		{"/ext_authz/v2/code/completions?a=b", "/v2/code/completions", "a=b", ""},
		{"/ext_authz", "/", "", ""},
		{"/ext_authz?x=1", "/", "x=1", ""},
		{"/ext_authz/a%20b", "/a%20b", "", ""},
		{"/other/x", "", "", "the check path must start with /ext_authz followed by the original path"},
		{"/ext_authzx", "", "", "the check path must start with /ext_authz followed by the original path"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("PATCH", tc.target, nil)
		r.Host = "Cloud.GitLab.com:443"
		var dst envoy.Request
		err := MapEnvoy(r, "/ext_authz", &dst)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || StatusOf(err) != 400 {
				t.Errorf("%s: err %v, want %q", tc.target, err, tc.err)
			}
			continue
		}
		if err != nil || dst.Input.Path != tc.path || dst.Input.Query != tc.query || dst.Input.Method != "PATCH" || dst.Input.Host != "cloud.gitlab.com:443" {
			t.Errorf("%s: %+v %v", tc.target, dst.Input, err)
		}
	}
}

func TestMapHeaders(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/auth/forward", nil)
	r.Header.Set("X-Forwarded-Method", "get")
	r.Header.Set("X-Forwarded-Uri", "/x?y=1")
	r.Header.Add("Authorization", "Bearer a")
	r.Header.Add("Authorization", "Bearer b")
	r.Header.Add("X-Gitlab-Feature-Enabled-By-Namespace-Ids", "1")
	r.Header.Add("X-Gitlab-Feature-Enabled-By-Namespace-Ids", "2")
	r.Header.Set("X-Ccauthz-Route", "forged")
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	r.Header.Set("X-Request-Id", "req-1")
	var dst envoy.Request
	if err := MapForward(r, &dst); err != nil {
		t.Fatal(err)
	}
	in := dst.Input
	// Repeated headers are joined as Envoy folds them; two Authorization
	// headers are joined too, which the verifier rejects as malformed.
	if dst.Authorization != "Bearer a,Bearer b" || in.Headers["x-gitlab-feature-enabled-by-namespace-ids"] != "1,2" {
		t.Errorf("authorization %q, headers %v", dst.Authorization, in.Headers)
	}
	if in.Method != "GET" || in.Path != "/x" || in.Query != "y=1" || in.Host != "example.com" {
		t.Errorf("input %+v", in)
	}
	if dst.TraceParent == "" || dst.RequestID != "req-1" {
		t.Errorf("traceparent %q request id %q", dst.TraceParent, dst.RequestID)
	}
	for k := range in.Headers {
		if strings.HasPrefix(k, "x-ccauthz-") || k == "x-forwarded-method" || k == "x-forwarded-uri" || k == "authorization" {
			t.Errorf("%s reached the input", k)
		}
	}
}

func TestMapProxiedErrors(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		query   string
		want    string
	}{
		{"no method", map[string]string{"X-Original-Uri": "/"}, "", "header X-Original-Method is required"},
		{"no uri", map[string]string{"X-Original-Method": "GET"}, "", "header X-Original-Uri is required"},
		{"absolute uri", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "http://x/"}, "", "the original URI must start with /"},
		{"control char", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/a\x01"}, "", "the original URI contains a space or control character"},
		{"long method", map[string]string{"X-Original-Method": strings.Repeat("G", 33), "X-Original-Uri": "/"}, "", "the original method must be 1 to 32 characters"},
		{"bad host", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/", "X-Forwarded-Host": "a@b"}, "", "the original host is not a host name"},
		{"backend conflict", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/", "X-Ccauthz-Backend": "a"}, "?backend=b",
			"the backend is named twice, differently (X-Ccauthz-Backend and ?backend=)"},
		{"backend header twice, differently", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/", "X-Ccauthz-Backend": "a"}, "",
			"header X-Ccauthz-Backend is sent more than once, with different backends"},
		{"header not UTF-8", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/", "X-Gitlab-Instance-Id": "i-\xff"}, "",
			`header "x-gitlab-instance-id" is not valid UTF-8`},
		{"host not UTF-8", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/", "X-Forwarded-Host": "h\xff"}, "",
			"the original host is not valid UTF-8"},
		{"backend too long", map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/"}, "?backend=" + strings.Repeat("a", 65),
			"the backend name must be snake_case (a-z, 0-9, _) and at most 64 characters"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/v1/auth/nginx"+tc.query, nil)
		for k, v := range tc.headers {
			r.Header[k] = []string{v}
		}
		if tc.name == "backend header twice, differently" {
			r.Header.Add("X-Ccauthz-Backend", "b")
		}
		var dst envoy.Request
		if err := MapNginx(r, &dst); err == nil || err.Error() != tc.want || StatusOf(err) != 400 {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
