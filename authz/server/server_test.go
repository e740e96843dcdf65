package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

type harness struct {
	srv      *Server
	ver      *fakeVerifier
	deciders map[string]*fakeDecider
	logs     *syncBuffer
	build    func(ctx context.Context) (*Snapshot, error)
}

func newHarness(t *testing.T, opts Options, backends ...*Backend) *harness {
	t.Helper()
	h := &harness{
		ver:      &fakeVerifier{auds: map[string]bool{"gitlab-ai-gateway": true, "gitlab-duo-workflow-service": true}},
		deciders: map[string]*fakeDecider{},
		logs:     &syncBuffer{},
	}
	for _, b := range backends {
		if b.Decider == nil {
			d := &fakeDecider{revision: "rev-" + b.Name}
			h.deciders[b.Name] = d
			b.Decider = d
		}
	}
	h.build = func(context.Context) (*Snapshot, error) { return NewSnapshot(backends, time.Now()) }
	metrics := NewMetrics(BuildInfo{Version: "test"}, nil, time.Now)
	srv, err := New(context.Background(), Deps{
		Verifier: h.ver, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Metrics: metrics,
		Build: func(ctx context.Context) (*Snapshot, error) { return h.build(ctx) },
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

func aiGateway() *Backend {
	return &Backend{Name: "ai_gateway", Audience: "gitlab-ai-gateway", Hosts: []string{"cloud.gitlab.com"}}
}

func request(path, auth string, ext map[string]string, host string) *authv3.CheckRequest {
	headers := map[string]string{"x-gitlab-realm": "saas", ":path": path}
	if auth != "" {
		headers["authorization"] = auth
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: path, Host: host, Headers: headers}},
		ContextExtensions: ext,
	}}
}

func meta(resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		out[k] = v.GetStringValue()
	}
	return out
}

func TestCheckAllowAndDeny(t *testing.T) {
	h := newHarness(t, Options{AllowLogSampling: 1}, aiGateway())
	ctx := context.Background()

	resp, err := h.srv.Check(ctx, request("/allowed?x=1", "Bearer good-inst1", nil, "cloud.gitlab.com"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil || resp.GetStatus().GetCode() != int32(code.Code_OK) {
		t.Fatalf("want allow, got %v", resp)
	}
	md := meta(resp)
	if md["backend"] != "ai_gateway" || md["policy_revision"] != "rev-ai_gateway" || md["reason"] != "allowed" ||
		md["ratelimit.instance_id"] != "inst1" || md["unit_primitive"] != "complete_code" || md["decision_id"] == "" {
		t.Errorf("allow metadata = %v", md)
	}
	in := h.deciders["ai_gateway"].inputs[0]
	if in.Backend != "ai_gateway" || in.Path != "/allowed" || in.Query != "x=1" || in.Token.Status != "valid" ||
		in.Token.Claims["sub"] != "inst1" || in.Headers["authorization"] != "" {
		t.Errorf("policy input = %+v", in)
	}
	if h.ver.calls[0] != "gitlab-ai-gateway" {
		t.Errorf("verified for audience %q, want the backend's jwt_aud", h.ver.calls[0])
	}

	tests := []struct {
		auth, path string
		status     int
		code       code.Code
		reason     string
	}{
		{"", "/allowed", 401, code.Code_UNAUTHENTICATED, "missing_authorization"},
		{"Bearer forged", "/allowed", 401, code.Code_UNAUTHENTICATED, "invalid_token"},
		{"Bearer good-inst1", "/v2/code/generations", 403, code.Code_PERMISSION_DENIED, "insufficient_scope"},
	}
	for _, tc := range tests {
		resp, _ := h.srv.Check(ctx, request(tc.path, tc.auth, nil, ""))
		den := resp.GetDeniedResponse()
		if den == nil || int(den.GetStatus().GetCode()) != tc.status || resp.GetStatus().GetCode() != int32(tc.code) {
			t.Errorf("%s %q: got %v", tc.path, tc.auth, resp)
			continue
		}
		if meta(resp)["reason"] != tc.reason {
			t.Errorf("%s %q: reason %q, want %q", tc.path, tc.auth, meta(resp)["reason"], tc.reason)
		}
	}

	// The decision log has every check (allows sampled at 1) and never the token.
	lines := h.logs.lines(t)
	var decisions int
	for _, l := range lines {
		if l["msg"] != "decision" {
			continue
		}
		decisions++
		for _, must := range []string{"decision_id", "backend", "reason", "status", "latency_ms", "dry_run", "route"} {
			if _, ok := l[must]; !ok {
				t.Errorf("decision log lacks %q: %v", must, l)
			}
		}
	}
	if decisions != 4 {
		t.Errorf("%d decision log lines, want 4", decisions)
	}
	all := h.logs.b.String()
	if strings.Contains(all, "good-inst1") || strings.Contains(all, "forged") {
		t.Errorf("a raw token was logged:\n%s", all)
	}
	if !strings.Contains(all, `"jti":"jti-inst1"`) || !strings.Contains(all, `"token_sha256":"`) {
		t.Errorf("log lacks the jti / token hash:\n%s", all)
	}
}

func TestBackendSelection(t *testing.T) {
	dws := &Backend{Name: "duo_workflow", Audience: "gitlab-duo-workflow-service", Hosts: []string{"dws.example.test"}}
	h := newHarness(t, Options{}, aiGateway(), dws)
	ctx := context.Background()
	tests := []struct {
		name        string
		ext         map[string]string
		host        string
		wantBackend string
		wantReason  string
	}{
		{"context extension wins over host", map[string]string{"backend": "duo_workflow"}, "cloud.gitlab.com", "duo_workflow", "allowed"},
		{"host with port and case", nil, "DWS.example.test:443", "duo_workflow", "allowed"},
		{"host", nil, "cloud.gitlab.com", "ai_gateway", "allowed"},
		{"unknown extension never falls back", map[string]string{"backend": "nope"}, "cloud.gitlab.com", "", "unknown_backend"},
		{"unknown host with two backends", nil, "evil.test", "", "unknown_backend"},
	}
	for _, tc := range tests {
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", tc.ext, tc.host))
		md := meta(resp)
		if md["backend"] != tc.wantBackend || md["reason"] != tc.wantReason {
			t.Errorf("%s: backend %q reason %q, want %q %q", tc.name, md["backend"], md["reason"], tc.wantBackend, tc.wantReason)
		}
		if tc.wantReason == "unknown_backend" && resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Errorf("%s: unknown backend must be denied 403, got %v", tc.name, resp)
		}
	}
	// With one backend, any host selects it.
	single := newHarness(t, Options{}, aiGateway())
	resp, _ := single.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, "anything.test"))
	if meta(resp)["backend"] != "ai_gateway" {
		t.Errorf("single backend not chosen: %v", meta(resp))
	}
	// A request without HTTP attributes is a clear 400.
	resp, _ = single.srv.Check(ctx, &authv3.CheckRequest{})
	if resp.GetDeniedResponse().GetStatus().GetCode() != 400 || meta(resp)["reason"] != "bad_request" {
		t.Errorf("empty request: %v", resp)
	}
}

func TestBackendIssuers(t *testing.T) {
	b := aiGateway()
	b.Issuers = []string{"gitlab_com"} // the fake verifier's issuer is "dev"
	h := newHarness(t, Options{}, b)
	resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, ""))
	if resp.GetDeniedResponse() == nil || meta(resp)["reason"] != "invalid_token" {
		t.Fatalf("a token from an issuer the backend does not accept must be denied: %v", meta(resp))
	}
	in := h.deciders["ai_gateway"].inputs[0]
	if in.Token.Status != "invalid" || in.Token.Reason != "unknown_issuer" || in.Token.Claims != nil {
		t.Errorf("policy saw %+v", in.Token)
	}
}

func TestNewSnapshotValidation(t *testing.T) {
	d := &fakeDecider{}
	_, err := NewSnapshot([]*Backend{
		{Name: "a", Decider: d, Hosts: []string{"h.test"}},
		{Name: "a", Decider: d},
		{Name: "b", Decider: d, Hosts: []string{"H.test:443"}},
		{Name: "c"},
	}, time.Now())
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`backend "a": configured twice`, `host "h.test": claimed by backends "a" and "b"`, `backend "c": no policy`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := NewSnapshot(nil, time.Now()); err == nil {
		t.Error("an empty snapshot must be rejected")
	}
}

func TestFailClosed(t *testing.T) {
	ctx := context.Background()
	t.Run("deadline with a decider that honours ctx", func(t *testing.T) {
		h := newHarness(t, Options{CheckTimeout: 20 * time.Millisecond, DryRun: true}, aiGateway())
		h.deciders["ai_gateway"].sleep = time.Minute
		start := time.Now()
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
		assertFault(t, resp, 503, "deadline_exceeded", code.Code_UNAVAILABLE)
		if time.Since(start) > time.Second {
			t.Errorf("check took %v", time.Since(start))
		}
	})
	t.Run("deadline with a verifier that ignores ctx", func(t *testing.T) {
		h := newHarness(t, Options{CheckTimeout: 20 * time.Millisecond}, aiGateway())
		h.ver.delay = 50 * time.Millisecond
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
		assertFault(t, resp, 503, "deadline_exceeded", code.Code_UNAVAILABLE)
	})
	t.Run("panic", func(t *testing.T) {
		h := newHarness(t, Options{DryRun: true}, aiGateway())
		h.deciders["ai_gateway"].panics = true
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
		assertFault(t, resp, 500, "internal_error", code.Code_INTERNAL)
		if !strings.Contains(h.logs.b.String(), "panic: boom") {
			t.Error("panic not logged")
		}
	})
	t.Run("evaluation error", func(t *testing.T) {
		h := newHarness(t, Options{}, aiGateway())
		h.deciders["ai_gateway"].err = errors.New("rego: eval_conflict_error")
		resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
		assertFault(t, resp, 500, "internal_error", code.Code_INTERNAL)
		if strings.Contains(resp.GetDeniedResponse().GetBody(), "rego") {
			t.Errorf("internal detail leaked to the client: %s", resp.GetDeniedResponse().GetBody())
		}
	})
}

func TestPanicOutsideTheDecisionFailsClosed(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	// Corrupt the backend's metric counters: finish dereferences them after
	// the decision, outside decide's own recover.
	h.srv.snap.Load().backends["ai_gateway"].counters = nil
	resp, err := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	assertFault(t, resp, 500, "internal_error", code.Code_INTERNAL)
	if !strings.Contains(scrape(t, h.srv), "ccauthz_check_panics_total 1") {
		t.Error("panic not counted")
	}
}

func assertFault(t *testing.T, resp *authv3.CheckResponse, status int, reason string, c code.Code) {
	t.Helper()
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("fault must deny (even in dry-run), got %v", resp)
	}
	if int(den.GetStatus().GetCode()) != status || meta(resp)["reason"] != reason || resp.GetStatus().GetCode() != int32(c) {
		t.Errorf("got status %d reason %q code %v; want %d %q %v", den.GetStatus().GetCode(), meta(resp)["reason"], resp.GetStatus().GetCode(), status, reason, c)
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil || body["error"] == "" {
		t.Errorf("fault body %q", den.GetBody())
	}
}

func TestDryRun(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		opts    Options
		backend *Backend
		route   bool
	}{
		{"global", Options{DryRun: true}, aiGateway(), false},
		{"backend", Options{}, &Backend{Name: "ai_gateway", Audience: "gitlab-ai-gateway", DryRun: true}, false},
		{"route", Options{}, aiGateway(), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts, tc.backend)
			h.deciders["ai_gateway"].routeDry = tc.route
			resp, _ := h.srv.Check(ctx, request("/v2/code/generations", "Bearer good-i", nil, ""))
			if resp.GetOkResponse() == nil {
				t.Fatalf("dry-run deny must be allowed: %v", resp)
			}
			md := meta(resp)
			if md["dry_run"] != "true" || md["would_deny_reason"] != "insufficient_scope" {
				t.Errorf("metadata %v", md)
			}
			body := scrape(t, h.srv)
			if !strings.Contains(body, `ccauthz_dry_run_would_deny_total{backend="ai_gateway",reason="insufficient_scope"} 1`) {
				t.Errorf("would-deny not counted:\n%s", grep(body, "would_deny"))
			}
			if !strings.Contains(h.logs.b.String(), `"dry_run":true`) {
				t.Error("dry-run decision not logged")
			}
		})
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	ctx := context.Background()
	h.build = func(context.Context) (*Snapshot, error) { return nil, errors.New("catalog.yml:3:1: unknown field") }
	if err := h.srv.Reload(ctx, "test"); err == nil {
		t.Fatal("want the build error")
	}
	resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
	if resp.GetOkResponse() == nil {
		t.Fatalf("old snapshot must keep serving: %v", resp)
	}
	body := scrape(t, h.srv)
	for _, want := range []string{`ccauthz_reloads_total{result="failure"} 1`, `ccauthz_last_reload_successful 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(body, "reload"))
		}
	}
	if !strings.Contains(h.logs.b.String(), "keeping the last good snapshot") {
		t.Error("failure not logged")
	}

	d2 := &fakeDecider{revision: "rev-2"}
	h.build = func(context.Context) (*Snapshot, error) {
		return NewSnapshot([]*Backend{{Name: "ai_gateway", Audience: "gitlab-ai-gateway", Decider: d2}}, time.Now())
	}
	if err := h.srv.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	resp, _ = h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
	if meta(resp)["policy_revision"] != "rev-2" {
		t.Errorf("new snapshot not serving: %v", meta(resp))
	}
	if !strings.Contains(scrape(t, h.srv), `ccauthz_last_reload_successful 1`) {
		t.Error("success not recorded")
	}
}

func TestReadiness(t *testing.T) {
	var mu sync.Mutex
	keysErr := errors.New("issuer dev: keys never fetched")
	b := aiGateway()
	b.Ready = func() error { mu.Lock(); defer mu.Unlock(); return keysErr }
	h := newHarness(t, Options{}, b)
	rec := httptest.NewRecorder()
	h.srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "keys never fetched") {
		t.Errorf("/readyz = %d %q", rec.Code, rec.Body.String())
	}
	mu.Lock()
	keysErr = nil
	mu.Unlock()
	h.srv.refreshReadiness()
	rec = httptest.NewRecorder()
	h.srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz = %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("/healthz = %d", rec.Code)
	}
}

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTraceParent(t *testing.T) {
	h := newHarness(t, Options{AllowLogSampling: 1}, aiGateway())
	req := request("/allowed", "Bearer good-i", nil, "")
	req.Attributes.Request.Http.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	_, _ = h.srv.Check(context.Background(), req)
	l := h.logs.b.String()
	if !strings.Contains(l, `"trace_id":"0af7651916cd43dd8448eb211c80319c"`) || !strings.Contains(l, `"span_id":"b7ad6b7169203331"`) {
		t.Errorf("trace context not logged: %s", l)
	}
	for _, bad := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"} {
		if _, sc := withTraceParent(context.Background(), bad); sc.IsValid() {
			t.Errorf("traceparent %q accepted", bad)
		}
	}
}

// TestMetadataIsStrings: every metadata leaf is a string except the
// documented limit override struct (Envoy's rate-limit actions need strings).
func TestMetadataIsStrings(t *testing.T) {
	h := newHarness(t, Options{DryRun: true}, aiGateway())
	for _, path := range []string{"/allowed", "/denied"} {
		resp, _ := h.srv.Check(context.Background(), request(path, "Bearer good-i", nil, ""))
		fields := resp.GetDynamicMetadata().GetFields()
		if len(fields) < 9 {
			t.Errorf("%s: only %d metadata keys: %v", path, len(fields), fields)
		}
		for k, v := range fields {
			if k == envoy.MetaRateLimitOverride {
				continue
			}
			if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
				t.Errorf("%s: metadata %q is %T, want a string", path, k, v.GetKind())
			}
		}
	}
}

// TestCallerDeadlineIsHonoured: a tighter deadline from Envoy (the gRPC
// call's) bounds the check as well as check_timeout does.
func TestCallerDeadlineIsHonoured(t *testing.T) {
	h := newHarness(t, Options{CheckTimeout: time.Minute}, aiGateway())
	h.deciders["ai_gateway"].sleep = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, _ := h.srv.Check(ctx, request("/allowed", "Bearer good-i", nil, ""))
	assertFault(t, resp, 503, "deadline_exceeded", code.Code_UNAVAILABLE)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("check took %v", d)
	}
}

func TestMetricsExposition(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	_, _ = h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", nil, ""))
	body := scrape(t, h.srv)
	for _, want := range []string{
		`ccauthz_checks_total{backend="ai_gateway",decision="allow",mode="grpc",reason="allowed"} 1`,
		`ccauthz_check_duration_seconds_count{backend="ai_gateway"} 1`,
		`ccauthz_build_info{go_version="`,
		`ccauthz_backend_ready{backend="ai_gateway"} 1`,
		`ccauthz_reloads_total{result="success"} 1`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
		// Pre-created at zero: every series the backend can produce.
		`ccauthz_checks_total{backend="ai_gateway",decision="deny",mode="grpc",reason="insufficient_scope"} 0`,
		`ccauthz_checks_total{backend="ai_gateway",decision="allow",mode="nginx",reason="public"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// ...and none it cannot: no allow with a denial reason outside dry-run,
	// no deny with an allow reason, no would-deny counters.
	for _, never := range []string{
		`decision="deny",reason="allowed"`,
		`decision="deny",reason="public"`,
		`decision="allow",reason="insufficient_scope"`,
		`ccauthz_dry_run_would_deny_total{`,
	} {
		if strings.Contains(body, never) {
			t.Errorf("/metrics has the impossible series %s:\n%s", never, grep(body, never))
		}
	}
	// In dry-run a denial reason may be allowed, and is pre-created so.
	body = scrape(t, newHarness(t, Options{DryRun: true}, aiGateway()).srv)
	for _, want := range []string{
		`ccauthz_checks_total{backend="ai_gateway",decision="allow",mode="json",reason="insufficient_scope"} 0`,
		`ccauthz_dry_run_would_deny_total{backend="ai_gateway",reason="insufficient_scope"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dry-run /metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `decision="deny",reason="allowed"`) {
		t.Error("dry-run /metrics has deny/allowed")
	}
}

type fakeStats struct{ now time.Time }

func (f fakeStats) TokenCache() (uint64, uint64) { return 7, 3 }
func (f fakeStats) Issuers() []IssuerStats {
	return []IssuerStats{
		{Name: "gitlab_com", Fetches: 4, Failures: 1, LastSuccess: f.now.Add(-90 * time.Second), Ready: true},
		{Name: "customers_dot", Fetches: 2, Failures: 2},
	}
}

func TestStatsMetrics(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m := NewMetrics(BuildInfo{}, fakeStats{now: now}, func() time.Time { return now })
	rec := httptest.NewRecorder()
	srv := &Server{metrics: m}
	srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"ccauthz_token_cache_hits_total 7", "ccauthz_token_cache_misses_total 3",
		`ccauthz_key_fetches_total{issuer="gitlab_com"} 4`, `ccauthz_key_fetch_failures_total{issuer="customers_dot"} 2`,
		`ccauthz_key_last_fetch_success_timestamp_seconds{issuer="gitlab_com"} 1.79999991e+09`,
		`ccauthz_issuer_ready{issuer="gitlab_com"} 1`, `ccauthz_issuer_ready{issuer="customers_dot"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// No sentinel for an issuer never fetched: the series is absent.
	if strings.Contains(body, `ccauthz_key_last_fetch_success_timestamp_seconds{issuer="customers_dot"}`) {
		t.Error("a fetch timestamp for customers_dot, whose keys were never fetched")
	}
}
