package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/policy"
)

// staticDecider answers one fixed decision and records the input.
type staticDecider struct {
	d  policy.Decision
	in policy.Input
}

func (s *staticDecider) Revision() string { return "static" }

func (s *staticDecider) Decide(_ context.Context, in *policy.Input) (policy.Decision, error) {
	s.in = *in
	return s.d, nil
}

// do sends one request through the HTTP check handler.
func do(h http.Handler, method, target string, headers map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range headers {
		if strings.EqualFold(k, "host") {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func jsonBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", w.Body.String(), err)
	}
	return m
}

func TestHTTPEnvoyService(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	hd := h.srv.HTTPHandler()

	w := do(hd, "POST", "/ext_authz/allowed?x=1&backend=nope", map[string]string{
		"Host": "Cloud.GitLab.com", "Authorization": "Bearer good-inst1", "X-Gitlab-Realm": "saas",
		"X-Ccauthz-Unit-Primitive": "forged", "X-Ccauthz-Backend": "ai_gateway"}, "")
	if w.Code != 200 || w.Header().Get("X-Ccauthz-Unit-Primitive") != "complete_code" || w.Header().Get("X-Ccauthz-Decision-Id") == "" {
		t.Fatalf("allow: %d %v", w.Code, w.Header())
	}
	in := h.deciders["ai_gateway"].inputs[0]
	if in.Method != "POST" || in.Path != "/allowed" || in.Query != "x=1&backend=nope" || in.Host != "cloud.gitlab.com" ||
		in.Headers["x-gitlab-realm"] != "saas" || in.Headers["authorization"] != "" || in.Token.Claims["sub"] != "inst1" {
		t.Errorf("policy input = %+v", in)
	}
	for k := range in.Headers {
		if strings.HasPrefix(k, "x-ccauthz-") {
			t.Errorf("client-sent %s reached the policy", k)
		}
	}

	w = do(hd, "GET", "/ext_authz/v2/code/generations", map[string]string{"Authorization": "Bearer good-inst1"}, "")
	if w.Code != 403 || w.Header().Get("Content-Type") != "application/json" ||
		w.Body.String() != `{"detail":"Unauthorized to access code completions"}` {
		t.Errorf("deny: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = do(hd, "GET", "/ext_authz/allowed", map[string]string{"Authorization": "Bearer forged"}, "")
	if w.Code != 401 || w.Header().Get("Www-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("401: %d %v", w.Code, w.Header())
	}
	// The prefix alone is the root path; a longer word is not the prefix.
	w = do(hd, "GET", "/ext_authz", map[string]string{"Authorization": "Bearer good-i"}, "")
	if w.Code != 403 || h.deciders["ai_gateway"].inputs[3].Path != "/" {
		t.Errorf("prefix alone: %d, path %q", w.Code, h.deciders["ai_gateway"].inputs[3].Path)
	}
	if w = do(hd, "GET", "/ext_authzz/allowed", nil, ""); w.Code != 404 {
		t.Errorf("not under the prefix: %d", w.Code)
	}
}

func TestHTTPEnvoyHeadersToRemove(t *testing.T) {
	d := &staticDecider{d: policy.Decision{Allow: true, Status: 200, Reason: policy.ReasonAllowed,
		Headers:         map[string]string{"x-ccauthz-decision": "allow"},
		HeadersToRemove: []string{"x-ccauthz-subject", "x-ccauthz-issuer"}}}
	h := newHarness(t, Options{}, &Backend{Name: "ai_gateway", Audience: "gitlab-ai-gateway", Decider: d})
	w := do(h.srv.HTTPHandler(), "GET", "/ext_authz/x", nil, "")
	if w.Code != 200 || w.Header().Get("X-Envoy-Auth-Headers-To-Remove") != "x-ccauthz-subject,x-ccauthz-issuer" ||
		w.Header().Get("X-Ccauthz-Decision") != "allow" {
		t.Errorf("allow: %d %v", w.Code, w.Header())
	}
	// forward-auth has no such header.
	w = do(h.srv.HTTPHandler(), "GET", "/v1/auth/forward", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/x"}, "")
	if w.Code != 200 || w.Header().Get("X-Envoy-Auth-Headers-To-Remove") != "" {
		t.Errorf("forward allow: %d %v", w.Code, w.Header())
	}
}

func TestHTTPNginx(t *testing.T) {
	dws := &Backend{Name: "duo_workflow", Audience: "gitlab-duo-workflow-service", Hosts: []string{"dws.example.test"}}
	h := newHarness(t, Options{}, aiGateway(), dws)
	hd := h.srv.HTTPHandler()
	nginx := func(uri string, extra map[string]string) *httptest.ResponseRecorder {
		hs := map[string]string{"Host": "ccauthz_check", "X-Original-Method": "post", "X-Original-URI": uri,
			"X-Forwarded-Host": "cloud.gitlab.com", "Authorization": "Bearer good-inst1"}
		for k, v := range extra {
			hs[k] = v
		}
		return do(hd, "GET", "/v1/auth/nginx", hs, "")
	}

	w := nginx("/allowed?q=1", map[string]string{"X-Ccauthz-Unit-Primitive": "forged"})
	if w.Code != 200 || w.Header().Get("X-Ccauthz-Unit-Primitive") != "complete_code" {
		t.Fatalf("allow: %d %v", w.Code, w.Header())
	}
	in := h.deciders["ai_gateway"].inputs[0]
	if in.Method != "POST" || in.Path != "/allowed" || in.Query != "q=1" || in.Host != "cloud.gitlab.com" {
		t.Errorf("input = %+v", in)
	}
	for _, gone := range []string{"x-original-uri", "x-original-method", "x-ccauthz-unit-primitive", "authorization"} {
		if _, ok := in.Headers[gone]; ok {
			t.Errorf("%s reached the policy", gone)
		}
	}

	tests := []struct {
		name       string
		uri        string
		extra      map[string]string
		wire, real int
		body       string
		www        string
	}{
		{"403", "/v2/code/generations", nil, 403, 403, `{"detail":"Unauthorized to access code completions"}`, ""},
		{"401 keeps WWW-Authenticate", "/allowed", map[string]string{"Authorization": "Bearer forged"}, 401, 401,
			`{"error":"Forbidden by auth provider"}`, `Bearer error="invalid_token"`},
		{"400 travels as 403", "relative", nil, 403, 400, `{"error":"the original URI must start with /"}`, ""},
		{"unknown backend", "/allowed", map[string]string{"X-Ccauthz-Backend": "nope"}, 403, 403,
			`{"error":"No protected backend is configured for this request"}`, ""},
		{"conflicting backend", "/allowed", map[string]string{"X-Ccauthz-Backend": "ai_gateway", "X-Forwarded-Host": "x"}, 200, 0, "", ""},
	}
	for _, tc := range tests {
		w := nginx(tc.uri, tc.extra)
		if w.Code != tc.wire {
			t.Errorf("%s: wire status %d, want %d", tc.name, w.Code, tc.wire)
			continue
		}
		if tc.real == 0 {
			continue
		}
		if got := w.Header().Get("X-Ccauthz-Status"); got != itoa(tc.real) {
			t.Errorf("%s: X-Ccauthz-Status %q, want %d", tc.name, got, tc.real)
		}
		if got := w.Header().Get("X-Ccauthz-Body"); got != tc.body || w.Body.String() != tc.body {
			t.Errorf("%s: X-Ccauthz-Body %q body %q, want %s", tc.name, got, w.Body, tc.body)
		}
		if got := w.Header().Get("Www-Authenticate"); got != tc.www {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.name, got, tc.www)
		}
		if w.Header().Get("X-Ccauthz-Decision-Id") == "" {
			t.Errorf("%s: no decision id", tc.name)
		}
	}

	// ?backend= and the header must agree; the query alone selects.
	r := httptest.NewRequest("GET", "/v1/auth/nginx?backend=duo_workflow", nil)
	r.Header.Set("X-Original-Method", "GET")
	r.Header.Set("X-Original-Uri", "/allowed")
	r.Header.Set("Authorization", "Bearer good-i")
	w = httptest.NewRecorder()
	hd.ServeHTTP(w, r)
	if w.Code != 200 || len(h.deciders["duo_workflow"].inputs) != 1 {
		t.Errorf("?backend=: %d, duo_workflow inputs %d", w.Code, len(h.deciders["duo_workflow"].inputs))
	}
	r.Header.Set("X-Ccauthz-Backend", "ai_gateway")
	w = httptest.NewRecorder()
	hd.ServeHTTP(w, r)
	if w.Code != 403 || w.Header().Get("X-Ccauthz-Status") != "400" || !strings.Contains(w.Header().Get("X-Ccauthz-Body"), "named twice") {
		t.Errorf("conflicting backend: %d %v", w.Code, w.Header())
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestHTTPForward(t *testing.T) {
	h := newHarness(t, Options{AllowLogSampling: 1}, aiGateway())
	hd := h.srv.HTTPHandler()
	fwd := map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/allowed", "X-Forwarded-Host": "cloud.gitlab.com",
		"X-Forwarded-Proto": "https", "Authorization": "Bearer forged"}
	w := do(hd, "GET", "/v1/auth/forward", fwd, "")
	if w.Code != 401 || w.Body.String() != `{"error":"Forbidden by auth provider"}` ||
		w.Header().Get("Www-Authenticate") == "" || w.Header().Get("X-Ccauthz-Status") != "" {
		t.Errorf("deny: %d %v %s", w.Code, w.Header(), w.Body)
	}
	fwd["Authorization"] = "Bearer good-i"
	w = do(hd, "GET", "/v1/auth/forward", fwd, "")
	if w.Code != 200 || w.Header().Get("X-Ccauthz-Unit-Primitive") != "complete_code" || w.Body.Len() != 0 {
		t.Errorf("allow: %d %v", w.Code, w.Header())
	}
	in := h.deciders["ai_gateway"].inputs[1]
	if in.Headers["x-forwarded-proto"] != "https" || in.Headers["x-forwarded-uri"] != "" {
		t.Errorf("input headers %v", in.Headers)
	}
	delete(fwd, "X-Forwarded-Method")
	w = do(hd, "GET", "/v1/auth/forward", fwd, "")
	if w.Code != 400 || jsonBody(t, w)["error"] != "header X-Forwarded-Method is required" {
		t.Errorf("malformed: %d %s", w.Code, w.Body)
	}
	// Every check is logged with its mode.
	modes := map[string]int{}
	for _, l := range h.logs.lines(t) {
		if l["msg"] == "decision" {
			modes[l["mode"].(string)]++
		}
	}
	if modes["forward"] != 3 {
		t.Errorf("decision log modes %v", modes)
	}
	if strings.Contains(h.logs.b.String(), "good-i") || strings.Contains(h.logs.b.String(), "forged") {
		t.Error("a raw token was logged")
	}
}

func TestHTTPJSON(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	hd := h.srv.HTTPHandler()
	body := `{"backend":"ai_gateway","method":"post","path":"/allowed?a=b","host":"cloud.gitlab.com",
		"headers":{"Authorization":"Bearer good-inst1","X-Gitlab-Realm":"saas","X-Ccauthz-Subject":"forged"}}`
	w := do(hd, "POST", "/v1/check", nil, body)
	if w.Code != 200 {
		t.Fatalf("allow: %d %s", w.Code, w.Body)
	}
	got := jsonBody(t, w)
	if got["allow"] != true || got["enforced_allow"] != true || got["status"] != 200.0 || got["reason"] != "allowed" ||
		got["backend"] != "ai_gateway" || got["policy_revision"] != "rev-ai_gateway" || got["decision_id"] == "" ||
		got["decision_id"] != w.Header().Get("X-Ccauthz-Decision-Id") || got["route"] != "allowed" {
		t.Errorf("allow decision %v", got)
	}
	if hs := got["headers"].(map[string]any); hs["x-ccauthz-unit-primitive"] != "complete_code" {
		t.Errorf("headers %v", hs)
	}
	if rl := got["rate_limit"].(map[string]any)["entries"].(map[string]any); rl["instance_id"] != "inst1" {
		t.Errorf("rate_limit %v", rl)
	}
	for _, k := range []string{"body", "response_headers", "headers_to_remove", "unit_primitives", "dry_run"} {
		if got[k] == nil {
			t.Errorf("%s is null", k)
		}
	}
	in := h.deciders["ai_gateway"].inputs[0]
	if in.Method != "POST" || in.Path != "/allowed" || in.Query != "a=b" || in.Headers["x-gitlab-realm"] != "saas" ||
		in.Headers["x-ccauthz-subject"] != "" || in.Headers["authorization"] != "" {
		t.Errorf("input %+v", in)
	}

	w = do(hd, "POST", "/v1/check", nil, `{"method":"GET","path":"/v2/x","headers":{"authorization":"Bearer good-i"}}`)
	got = jsonBody(t, w)
	if w.Code != 200 || got["allow"] != false || got["status"] != 403.0 || got["reason"] != "insufficient_scope" ||
		got["body"].(map[string]any)["detail"] == nil {
		t.Errorf("deny: %d %v", w.Code, got)
	}

	malformed := []struct{ name, body, want string }{
		{"not JSON", `{"method":`, "the request body is not a check request: unexpected EOF"},
		{"syntax", `{"method" "GET"}`, "the request body is not JSON: invalid character '\"' after object key (at byte 11)"},
		{"array", `[]`, "the request body must be a JSON object, got a JSON array"},
		{"wrong type", `{"method":"GET","path":"/","headers":{"a":1}}`, `field "headers" must be an object of strings, got a JSON number`},
		{"unknown field", `{"method":"GET","path":"/","hedaers":{}}`, `the request body is not a check request: unknown field "hedaers"`},
		{"empty", ``, "the request body is empty; want a JSON object"},
		{"trailing", `{"method":"GET","path":"/"} {}`, "the request body has data after the JSON object"},
		{"no method", `{"path":"/"}`, `field "method" is required`},
		{"no path", `{"method":"GET"}`, `field "path" is required`},
		{"bad method", `{"method":"G T","path":"/"}`, "the original method is not an HTTP method token"},
		{"bad path", `{"method":"GET","path":"/a b"}`, "the original URI contains a space or control character"},
		{"twice", `{"method":"GET","path":"/","headers":{"X-A":"1","x-a":"2"}}`, `header "x-a" is given twice (names are case-insensitive)`},
		{"bad backend", `{"backend":"Nope!","method":"GET","path":"/"}`, "the backend name must be snake_case (a-z, 0-9, _) and at most 64 characters"},
		{"bad host", `{"method":"GET","path":"/","host":"a/b"}`, "the original host is not a host name"},
	}
	for _, tc := range malformed {
		w := do(hd, "POST", "/v1/check", nil, tc.body)
		if w.Code != 400 {
			t.Errorf("%s: status %d, want 400 (%s)", tc.name, w.Code, w.Body)
			continue
		}
		got := jsonBody(t, w)
		if got["error"] != tc.want || got["decision_id"] == nil {
			t.Errorf("%s: %v, want error %q", tc.name, got, tc.want)
		}
	}
	big := `{"method":"GET","path":"/` + strings.Repeat("a", 70<<10) + `"}`
	if w := do(hd, "POST", "/v1/check", nil, big); w.Code != 413 || !strings.Contains(jsonBody(t, w)["error"].(string), "65536") {
		t.Errorf("too large: %d %s", w.Code, w.Body)
	}
	if w := do(hd, "GET", "/v1/check", nil, ""); w.Code != 405 || w.Header().Get("Allow") != "POST" || jsonBody(t, w)["error"] == nil {
		t.Errorf("GET: %d", w.Code)
	}
	if w := do(hd, "GET", "/nope", nil, ""); w.Code != 404 || jsonBody(t, w)["error"] == nil {
		t.Errorf("unknown path: %d", w.Code)
	}
	// Malformed checks are counted as bad_request.
	if !strings.Contains(scrape(t, h.srv), `ccauthz_checks_total{backend="unknown",decision="deny",mode="json",reason="bad_request"} 15`) {
		t.Errorf("bad requests not counted:\n%s", scrape(t, h.srv))
	}
}

func TestHTTPFaultsFailClosed(t *testing.T) {
	h := newHarness(t, Options{DryRun: true, CheckTimeout: 20 * time.Millisecond}, aiGateway())
	hd := h.srv.HTTPHandler()
	fwd := map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/allowed", "Authorization": "Bearer good-i"}
	nginx := map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/allowed", "Authorization": "Bearer good-i"}

	h.deciders["ai_gateway"].panics = true
	if w := do(hd, "GET", "/v1/auth/forward", fwd, ""); w.Code != 500 || jsonBody(t, w)["error"] != "Internal authorization error" {
		t.Errorf("panic, forward: %d %s", w.Code, w.Body)
	}
	if w := do(hd, "GET", "/v1/auth/nginx", nginx, ""); w.Code != 403 || w.Header().Get("X-Ccauthz-Status") != "500" {
		t.Errorf("panic, nginx: %d %v", w.Code, w.Header())
	}
	h.deciders["ai_gateway"].panics = false
	h.deciders["ai_gateway"].sleep = time.Minute
	if w := do(hd, "GET", "/ext_authz/allowed", map[string]string{"Authorization": "Bearer good-i"}, ""); w.Code != 503 {
		t.Errorf("deadline, envoy: %d %s", w.Code, w.Body)
	}
	if w := do(hd, "GET", "/v1/auth/nginx", nginx, ""); w.Code != 403 || w.Header().Get("X-Ccauthz-Status") != "503" {
		t.Errorf("deadline, nginx: %d %v", w.Code, w.Header())
	}
	w := do(hd, "POST", "/v1/check", nil, `{"method":"GET","path":"/allowed","headers":{"authorization":"Bearer good-i"}}`)
	if got := jsonBody(t, w); w.Code != 200 || got["enforced_allow"] != false || got["status"] != 503.0 || got["reason"] != "deadline_exceeded" {
		t.Errorf("deadline, json: %d %v", w.Code, got)
	}

	// A panic after the decision (accounting) is answered, never the allow.
	ok := newHarness(t, Options{}, aiGateway())
	ok.srv.snap.Load().backends["ai_gateway"].counters = nil
	if w := do(ok.srv.HTTPHandler(), "GET", "/v1/auth/forward", fwd, ""); w.Code != 500 {
		t.Errorf("panic while accounting: %d", w.Code)
	}
}

func TestHTTPDryRun(t *testing.T) {
	h := newHarness(t, Options{DryRun: true}, aiGateway())
	nginx := map[string]string{"X-Original-Method": "GET", "X-Original-Uri": "/v2/denied", "Authorization": "Bearer good-i"}
	w := do(h.srv.HTTPHandler(), "GET", "/v1/auth/nginx", nginx, "")
	if w.Code != 200 || w.Header().Get("X-Ccauthz-Unit-Primitive") != "" {
		t.Errorf("dry-run deny must pass without identity headers: %d %v", w.Code, w.Header())
	}
}

// TestHTTPListener serves the HTTP checks on a real socket: the header
// limit, an allow, and the drain.
func TestHTTPListener(t *testing.T) {
	assertNoLeak := goroutineBaseline(t)
	h := newHarness(t, Options{DrainTimeout: 2 * time.Second, HTTP: HTTPOptions{MaxHeaderBytes: 4096}}, aiGateway())
	var ls Listeners
	for _, p := range []*net.Listener{&ls.GRPC, &ls.Admin, &ls.HTTP} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*p = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ls) }()
	base := "http://" + ls.HTTP.Addr().String()

	req, _ := http.NewRequest("GET", base+"/v1/auth/forward", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/allowed")
	req.Header.Set("Authorization", "Bearer good-i")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("allow over the listener: %d", resp.StatusCode)
	}
	// net/http allows 4 KiB of slack over MaxHeaderBytes.
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers: %d %s", resp.StatusCode, b)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get(base + "/v1/check"); err == nil {
		t.Error("HTTP check listener still open after the drain")
	}
	http.DefaultClient.CloseIdleConnections()
	assertNoLeak()
}
