package httpcheck

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/policy"
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
		err := MapEnvoy(r, "/ext_authz", 1<<20, &dst)
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
	if err := MapForward(r, 1<<20, &dst); err != nil {
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

// TestBodyModes: what each HTTP check mode makes of the original request's
// body.
func TestBodyModes(t *testing.T) {
	const obj = `{"prompt_components":[{"type":"code_editor_generation"}]}`
	type mapper func(r *http.Request, dst *envoy.Request) error
	envoyMode := func(r *http.Request, dst *envoy.Request) error { return MapEnvoy(r, "/ext_authz", 64, dst) }
	forwardMode := func(r *http.Request, dst *envoy.Request) error { return MapForward(r, 64, dst) }
	tests := []struct {
		name    string
		mode    mapper
		target  string
		body    string
		headers map[string]string
		status  string
	}{
		{"envoy: body forwarded", envoyMode, "/ext_authz/v4/code/suggestions", obj,
			map[string]string{"X-Envoy-Auth-Partial-Body": "false"}, policy.BodyOK},
		{"envoy: cut by allow_partial_message", envoyMode, "/ext_authz/v4/code/suggestions", `{"prompt_components":[`,
			map[string]string{"X-Envoy-Auth-Partial-Body": "true"}, policy.BodyTruncated},
		{"envoy: over the limit", envoyMode, "/ext_authz/v4/code/suggestions", obj + strings.Repeat(" ", 64), nil, policy.BodyTooLarge},
		{"envoy: no body", envoyMode, "/ext_authz/v4/code/suggestions", "", nil, policy.BodyAbsent},
		{"envoy: not json", envoyMode, "/ext_authz/v4/code/suggestions", "a=b", nil, policy.BodyInvalid},
		{"forward: Traefik forwardBody", forwardMode, "/v1/auth/forward", obj,
			map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/v4/code/suggestions"}, policy.BodyOK},
		{"forward: Caddy sends none", forwardMode, "/v1/auth/forward", "",
			map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/v4/code/suggestions"}, policy.BodyAbsent},
		{"nginx: never a body, even if one is sent", MapNginx, "/v1/auth/nginx", obj,
			map[string]string{"X-Original-Method": "POST", "X-Original-Uri": "/v4/code/suggestions"}, policy.BodyAbsent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.target, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			var dst envoy.Request
			if err := tc.mode(r, &dst); err != nil {
				t.Fatal(err)
			}
			if _, ok := dst.Input.Headers[envoy.HeaderPartialBody]; ok {
				t.Errorf("%s reached the policy's headers", envoy.HeaderPartialBody)
			}
			got := envoy.DecodeBody(dst.Body, 64)
			if got.Status != tc.status {
				t.Fatalf("status %q, want %q", got.Status, tc.status)
			}
			if got.Status == policy.BodyOK {
				want := map[string]any{"prompt_components": []any{map[string]any{"type": "code_editor_generation"}}}
				if !reflect.DeepEqual(got.JSON, want) || got.Size != len(obj) {
					t.Errorf("JSON %#v size %d", got.JSON, got.Size)
				}
			}
		})
	}
}

func TestMapJSONBody(t *testing.T) {
	tests := []struct {
		name, req, status, err string
		json                   any
	}{
		{"no body", `{"method":"POST","path":"/v2/chat/agent"}`, policy.BodyAbsent, "", nil},
		{"null body", `{"method":"POST","path":"/v2/chat/agent","body":null}`, policy.BodyAbsent, "", nil},
		{"json body", `{"method":"POST","path":"/v2/chat/agent","body":{"messages":[{"additional_context":[{"category":"issue"}]}]}}`,
			policy.BodyOK, "", map[string]any{"messages": []any{map[string]any{"additional_context": []any{map[string]any{"category": "issue"}}}}}},
		{"scalar body", `{"method":"POST","path":"/x","body":"text"}`, policy.BodyOK, "", "text"},
		{"base64 json", `{"method":"POST","path":"/x","body_base64":"eyJhIjoxfQ=="}`, policy.BodyOK, "", map[string]any{"a": 1.0}},
		{"base64 not json", `{"method":"POST","path":"/x","body_base64":"YT1i"}`, policy.BodyInvalid, "", nil},
		{"base64 empty", `{"method":"POST","path":"/x","body_base64":""}`, policy.BodyInvalid, "", nil},
		{"over the limit", `{"method":"POST","path":"/x","body":"` + strings.Repeat("a", 70) + `"}`, policy.BodyTooLarge, "", nil},
		{"both", `{"method":"POST","path":"/x","body":{},"body_base64":"e30="}`, "", `fields "body" and "body_base64" are exclusive; give at most one`, nil},
		{"bad base64", `{"method":"POST","path":"/x","body_base64":"%%"}`, "", `field "body_base64" is not standard base64`, nil},
		{"base64 not a string", `{"method":"POST","path":"/x","body_base64":1}`, "", `field "body_base64" must be a string, got a JSON number`, nil},
		{"forged partial header", `{"method":"POST","path":"/x","body":{},"headers":{"X-Envoy-Auth-Partial-Body":"true"}}`, policy.BodyOK, "", map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/check", strings.NewReader(tc.req))
			var dst envoy.Request
			err := MapJSON(r, 1<<20, &dst)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || StatusOf(err) != 400 {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := envoy.DecodeBody(dst.Body, 64)
			if got.Status != tc.status || !reflect.DeepEqual(got.JSON, tc.json) {
				t.Errorf("got %q %#v, want %q %#v", got.Status, got.JSON, tc.status, tc.json)
			}
			if _, ok := dst.Input.Headers[envoy.HeaderPartialBody]; ok {
				t.Errorf("%s reached the policy's headers", envoy.HeaderPartialBody)
			}
		})
	}
}
