package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// The end-to-end tests build the real binary once (into the top test's temp
// dir), start it on free loopback ports and always stop it.

func TestServeE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "ccauthz")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("default prints an allow and a deny", func(t *testing.T) { testDefault(t, bin) })
	t.Run("invalid config", func(t *testing.T) { testInvalidConfig(t, bin) })
	t.Run("issuer down from the start", func(t *testing.T) { testIssuerDown(t, bin) })
	t.Run("global dry-run", func(t *testing.T) { testGlobalDryRun(t, bin) })
	t.Run("configured backends", func(t *testing.T) { testConfigured(t, bin) })
}

// proc is a started ccauthz serve.
type proc struct {
	cmd    *exec.Cmd
	grpc   string
	admin  string
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan error
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	// Port 0: the kernel picks free ports and the server logs them, so no
	// other process can take a port between choosing and binding it.
	p.cmd = exec.Command(bin, append([]string{"serve", "--grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.conn != nil {
			p.conn.Close()
		}
		p.stop(t)
		if t.Failed() {
			t.Logf("stderr of ccauthz (last lines):\n%s", tail(p.stderr.String(), 12))
		}
	})
	serving := regexp.MustCompile(`"msg":"serving","grpc":"([^"]+)","admin":"([^"]+)"`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := serving.FindStringSubmatch(p.stderr.String()); m != nil {
			p.grpc, p.admin = m[1], m[2]
			break
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("ccauthz exited (%v) before serving:\n%s", err, tail(p.stderr.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ccauthz did not log its listeners:\n%s", tail(p.stderr.String(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p.conn, p.client = conn, authv3.NewAuthorizationClient(conn)
	p.waitHTTP(t, "/healthz", 200)
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits; a process that does not stop is killed and
// the test fails.
func (p *proc) stop(t *testing.T) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("ccauthz did not stop within 20s of SIGTERM")
		return <-p.done
	}
}

func (p *proc) get(path string) (int, string) {
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *proc) waitHTTP(t *testing.T, path string, want int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := p.get(path)
		if code == want {
			return body
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("ccauthz exited (%v) before %s answered %d:\n%s", err, path, want, tail(p.stderr.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d", path, code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMetric polls /metrics until a line matches re.
func (p *proc) waitMetric(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := p.get("/metrics")
		if rx.MatchString(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metric matches %s:\n%s", re, grepLines(body, "ccauthz_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (p *proc) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// waitOutcome repeats a check until it answers status (key caches refresh
// on their own schedule), failing after a deadline.
func (p *proc) waitOutcome(t *testing.T, r *authv3.CheckRequest, status int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := outcomeOf(p.check(t, r))
		if got.status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v, want status %d", got, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// outcome is what a response says, for table comparisons.
type outcome struct {
	status int // 200 on allow
	reason string
	body   string // JSON body on deny
}

func outcomeOf(resp *authv3.CheckResponse) outcome {
	md := resp.GetDynamicMetadata().GetFields()
	o := outcome{status: 200, reason: md["reason"].GetStringValue()}
	if d := resp.GetDeniedResponse(); d != nil {
		o.status = int(d.GetStatus().GetCode())
		o.body = d.GetBody()
	}
	return o
}

func testDefault(t *testing.T, bin string) {
	state := filepath.Join(t.TempDir(), "state")
	p := start(t, bin, "--state-dir", state)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stdout.String(), "Ctrl-C") {
		if time.Now().After(deadline) {
			t.Fatalf("no commands printed; stdout:\n%s", p.stdout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := p.stdout.String()
	if !strings.Contains(out, "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4") {
		t.Errorf("no grpcurl install hint:\n%s", out)
	}
	re := regexp.MustCompile(`grpcurl -plaintext -d '([^']+)' (\S+) envoy.service.auth.v3.Authorization/Check`)
	cmds := re.FindAllStringSubmatch(out, -1)
	if len(cmds) != 2 {
		t.Fatalf("want 2 grpcurl Check commands, got %d:\n%s", len(cmds), out)
	}
	p.waitHTTP(t, "/readyz", 200)
	// The printed JSON is what grpcurl would send: decode it the same way
	// (protojson) and send it.
	var got []outcome
	for _, c := range cmds {
		if c[2] != p.grpc {
			t.Errorf("command targets %s, want %s", c[2], p.grpc)
		}
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal([]byte(c[1]), req); err != nil {
			t.Fatalf("printed request is not a CheckRequest: %v", err)
		}
		got = append(got, outcomeOf(p.check(t, req)))
	}
	want := []outcome{
		{200, "allowed", ""},
		{403, "insufficient_scope", `{"detail":"Unauthorized to access code generations"}`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for path, mode := range map[string]os.FileMode{
		filepath.Join(state, "dev-issuer"):                    0o700 | os.ModeDir,
		filepath.Join(state, "dev-issuer", "signing-key.pem"): 0o600,
	} {
		if info, err := os.Stat(path); err != nil || info.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, info.Mode(), err, mode)
		}
	}
	// Health: overall and per backend SERVING.
	h := healthpb.NewHealthClient(p.conn)
	for _, svc := range []string{"", "ai_gateway", "envoy.service.auth.v3.Authorization"} {
		r, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, %v", svc, r.GetStatus(), err)
		}
	}
	// Every decision was logged (the default samples all allows), without the token.
	logs := p.stderr.String()
	if n := strings.Count(logs, `"msg":"decision"`); n != 2 {
		t.Errorf("%d decision logs, want 2", n)
	}
	tok := regexp.MustCompile(`Bearer ([A-Za-z0-9_.-]+)`).FindStringSubmatch(out)[1]
	if strings.Contains(logs, tok) || strings.Contains(logs, strings.Split(tok, ".")[2]) {
		t.Error("the token was logged")
	}
	if err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

func testInvalidConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	writeFile(t, cfg, "catalog: embedded:example\nbackends: [{name: ai_gateway}]\nissuers: []\nlogging: {level: loud}\n")
	cmd := exec.Command(bin, "serve", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInvalid {
		t.Fatalf("exit = %v, want %d", err, exitInvalid)
	}
	for _, want := range []string{
		cfg + `:2:12: missing required field "manifest" in backend`,
		cfg + `:4:18: field "level" must be one of debug, info, warn, error, got "loud"`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// keyServer is an httptest JWKS endpoint whose keys can rotate and which
// can fail.
type keyServer struct {
	srv  *httptest.Server
	set  atomic.Pointer[[]byte]
	fail atomic.Bool
}

func newKeyServer(t *testing.T, keys ...crypto.Signer) *keyServer {
	ks := &keyServer{}
	ks.serve(t, keys...)
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ks.fail.Load() {
			http.Error(w, "issuer down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=1")
		_, _ = w.Write(*ks.set.Load())
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keyServer) serve(t *testing.T, keys ...crypto.Signer) {
	pubs := make([]crypto.PublicKey, len(keys))
	for i, k := range keys {
		pubs[i] = k.Public()
	}
	b, err := jwks.MarshalJWKS(pubs)
	if err != nil {
		t.Fatal(err)
	}
	ks.set.Store(&b)
}

func newKey(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	instanceID = "2b7d1a70-5e43-4d8c-9f0a-1c2d3e4f5a6b"
	gitlabIss  = "https://gitlab.example.test"
)

func mint(t *testing.T, key crypto.Signer, iss string, aud []string, scopes ...string) string {
	t.Helper()
	tok, err := token.Mint(key, token.MintClaims{
		Issuer: iss, Subject: instanceID, Audience: aud, Scopes: scopes,
		Realm: "self-managed", InstanceID: instanceID, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// req builds the CheckRequest Envoy sends for a request from the instance.
func req(path, auth string, ext map[string]string, extra ...string) *authv3.CheckRequest {
	h := map[string]string{
		":method": "POST", ":path": path, ":authority": "cloud.gitlab.com",
		"x-gitlab-authentication-type": "oidc", "x-gitlab-instance-id": instanceID, "x-gitlab-realm": "self-managed",
	}
	if auth != "" {
		h["authorization"] = auth
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
			continue
		}
		h[extra[i]] = extra[i+1]
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: h[":method"], Path: path, Host: "cloud.gitlab.com", Headers: h}},
		ContextExtensions: ext,
	}}
}

func testIssuerDown(t *testing.T, bin string) {
	key := newKey(t)
	ks := newKeyServer(t, key)
	ks.fail.Store(true)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ccauthz.yaml")
	writeFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers:
  - {name: gitlab, issuer: %s, jwks_url: %s, keys: {refresh_floor: 1s, fetch_timeout: 1s, unknown_kid_interval: 1s}}
`, gitlabIss, ks.srv.URL))
	p := start(t, bin, "--config", cfg)
	body := p.waitHTTP(t, "/readyz", 503)
	if !strings.Contains(body, "issuer gitlab") {
		t.Errorf("/readyz does not say why: %q", body)
	}
	h, err := healthpb.NewHealthClient(p.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "ai_gateway"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
	tok := mint(t, key, gitlabIss, []string{"gitlab-ai-gateway"}, "complete_code")
	got := outcomeOf(p.check(t, req("/v2/code/completions", "Bearer "+tok, nil)))
	want := outcome{503, "keys_unavailable", `{"error":"Authentication keys unavailable"}`}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	// The issuer recovers: the server becomes ready and allows.
	ks.fail.Store(false)
	p.waitHTTP(t, "/readyz", 200)
	if got := outcomeOf(p.check(t, req("/v2/code/completions", "Bearer "+tok, nil))); got.status != 200 {
		t.Errorf("after recovery: %v", got)
	}
	p.waitMetric(t, `ccauthz_key_fetch_failures_total\{issuer="gitlab"\} [1-9]`)
}

func testGlobalDryRun(t *testing.T, bin string) {
	key := newKey(t)
	set, err := jwks.MarshalJWKS([]crypto.PublicKey{key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "jwks.json"), string(set))
	cfg := filepath.Join(dir, "ccauthz.yaml")
	writeFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: gitlab, issuer: %s, jwks_file: jwks.json}]
dry_run: true
`, gitlabIss))
	p := start(t, bin, "--config", cfg)
	p.waitHTTP(t, "/readyz", 200)
	tok := "Bearer " + mint(t, key, gitlabIss, []string{"gitlab-ai-gateway"}, "complete_code")
	for _, tc := range []struct {
		req       *authv3.CheckRequest
		wouldDeny string
	}{
		{req("/v2/code/completions", tok, nil), ""},
		{req("/v2/code/generations", tok, nil), "insufficient_scope"},
		{req("/v2/code/completions", "", nil), "missing_authorization"},
	} {
		resp := p.check(t, tc.req)
		md := resp.GetDynamicMetadata().GetFields()
		if resp.GetOkResponse() == nil || md["dry_run"].GetStringValue() != "true" || md["would_deny_reason"].GetStringValue() != tc.wouldDeny {
			t.Errorf("%s: %v", tc.req.GetAttributes().GetRequest().GetHttp().GetPath(), resp)
		}
	}
	// Faults are never relaxed by dry-run.
	if got := outcomeOf(p.check(t, req("/v2/code/completions", tok, map[string]string{"backend": "nope"}))); got.status != 403 {
		t.Errorf("unknown backend in dry-run: %+v", got)
	}
	p.waitMetric(t, `ccauthz_dry_run_would_deny_total\{backend="ai_gateway",reason="missing_authorization"\} 1`)
	if n := strings.Count(p.stderr.String(), `"dry_run":true`); n < 2 {
		t.Errorf("%d dry-run decisions logged, want the 2 would-deny ones at least", n)
	}
}

func copyFS(t *testing.T, fsys fs.FS, dst string) {
	t.Helper()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, path), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testConfigured(t *testing.T, bin string) {
	keyA, userKey := newKey(t), newKey(t)
	gitlab := newKeyServer(t, keyA)
	aigw := newKeyServer(t, userKey)
	dir := t.TempDir()
	copyFS(t, catalog.ExampleFS(), filepath.Join(dir, "catalog"))
	_, manifestYAML, err := manifest.ExampleSource("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ai_gateway.yaml"), string(manifestYAML))
	writeFile(t, filepath.Join(dir, "extra", "deny.rego"), `package ccauthz.extra

deny contains "Blocked by local policy" if {
	input.request.headers["x-block-me"] == "yes"
}
`)
	cfg := filepath.Join(dir, "ccauthz.yaml")
	writeFile(t, cfg, fmt.Sprintf(`catalog: catalog
backends:
  - {name: ai_gateway, manifest: ai_gateway.yaml, extra_rego: extra, hosts: [cloud.gitlab.com]}
  - {name: duo_workflow, manifest: embedded:duo_workflow, issuers: [gitlab]}
  - {name: ai_gateway_shadow, manifest: embedded:ai_gateway, dry_run: true}
issuers:
  - {name: gitlab, issuer: %s, jwks_url: %s, keys: {refresh_floor: 1s, fetch_timeout: 1s, unknown_kid_interval: 1s}}
  - {name: aigw, issuer: gitlab-ai-gateway, kind: user, jwks_url: %s, keys: {refresh_floor: 1s, fetch_timeout: 1s, unknown_kid_interval: 1s}}
logging: {allow_sample_rate: 1}
watch: {interval: 100ms, debounce: 200ms}
drain_timeout: 10s
`, gitlabIss, gitlab.srv.URL, aigw.srv.URL))
	p := start(t, bin, "--config", cfg)
	p.waitHTTP(t, "/readyz", 200)

	aud := []string{"gitlab-ai-gateway"}
	good := "Bearer " + mint(t, keyA, gitlabIss, aud, "complete_code", "duo_chat")
	forged := "Bearer " + mint(t, newKey(t), gitlabIss, aud, "complete_code")
	userTok := "Bearer " + mint(t, userKey, "gitlab-ai-gateway", aud, "complete_code", "generate_code")
	// current is a token of the issuer's currently published key (the
	// rotation subtest moves it to the new key).
	current := good

	t.Run("every denial reason with the AI gateway's bodies", func(t *testing.T) {
		tests := []struct {
			name string
			req  *authv3.CheckRequest
			want outcome
		}{
			{"allowed", req("/v2/code/completions", good, nil), outcome{200, "allowed", ""}},
			{"public route", req("/monitoring/healthz", "", nil, ":method", "GET"), outcome{200, "public", ""}},
			{"missing authorization", req("/v2/code/completions", "", nil),
				outcome{401, "missing_authorization", `{"error":"No authorization header presented"}`}},
			{"not bearer", req("/v2/code/completions", "Basic dXNlcjpwdw==", nil),
				outcome{401, "invalid_authorization_header", `{"error":"Invalid authorization header"}`}},
			{"not oidc", req("/v2/code/completions", good, nil, "x-gitlab-authentication-type", ""),
				outcome{401, "invalid_authentication_type", `{"error":"Invalid authentication token type - only OIDC is supported"}`}},
			{"forged token", req("/v2/code/completions", forged, nil),
				outcome{401, "invalid_token", `{"error":"Forbidden by auth provider"}`}},
			{"realm mismatch", req("/v2/code/completions", good, nil, "x-gitlab-realm", "saas"),
				outcome{401, "header_mismatch", `{"error":"Header mismatch 'X-Gitlab-Realm'"}`}},
			{"no route", req("/v9/nothing", good, nil), outcome{404, "no_route", `{"detail":"Not Found"}`}},
			{"user token on a route that refuses it", req("/v2/code/generations", userTok, nil, "x-gitlab-global-user-id", instanceID),
				outcome{403, "issuer_not_allowed", `{"detail":"Unauthorized to access code generations"}`}},
			{"proxy without unit primitive", req("/v1/proxy/anthropic/v1/messages", good, nil),
				outcome{400, "missing_unit_primitive_header", `{"detail":"Missing x-gitlab-unit-primitive header"}`}},
			{"proxy with unknown unit primitive", req("/v1/proxy/anthropic/v1/messages", good, nil, "x-gitlab-unit-primitive", "make_coffee"),
				outcome{400, "unknown_unit_primitive", `{"detail":"Unknown unit primitive header make_coffee"}`}},
			{"proxy with a unit primitive it does not serve", req("/v1/proxy/anthropic/v1/messages", good, nil, "x-gitlab-unit-primitive", "complete_code"),
				outcome{400, "unit_primitive_not_allowed", `{"detail":"This endpoint cannot be used for complete_code purpose"}`}},
			{"missing scope", req("/v2/code/generations", good, nil),
				outcome{403, "insufficient_scope", `{"detail":"Unauthorized to access code generations"}`}},
			{"extra Rego", req("/v2/code/completions", good, nil, "x-block-me", "yes"),
				outcome{403, "extra_policy_deny", `{"detail":"Blocked by local policy"}`}},
			{"unknown backend", req("/v2/code/completions", good, map[string]string{"backend": "nope"}),
				outcome{403, "unknown_backend", `{"error":"No protected backend is configured for this request"}`}},
		}
		for _, tc := range tests {
			resp := p.check(t, tc.req)
			if got := outcomeOf(resp); got != tc.want {
				t.Errorf("%s: got %+v\nwant %+v", tc.name, got, tc.want)
			}
			if tc.want.status == 200 {
				continue
			}
			var ct bool
			for _, h := range resp.GetDeniedResponse().GetHeaders() {
				ct = ct || h.GetHeader().GetKey() == "content-type" && h.GetHeader().GetValue() == "application/json"
			}
			if !ct {
				t.Errorf("%s: deny without content-type application/json", tc.name)
			}
		}
		p.waitMetric(t, `ccauthz_checks_total\{backend="ai_gateway",decision="deny",reason="header_mismatch"\} 1`)
	})

	t.Run("context extension selects among backends", func(t *testing.T) {
		dwsTok := "Bearer " + mint(t, keyA, gitlabIss, []string{"gitlab-duo-workflow-service"}, "duo_workflow_execute_workflow")
		ext := map[string]string{"backend": "duo_workflow"}
		if got := outcomeOf(p.check(t, req("/DuoWorkflow/ExecuteWorkflow", dwsTok, ext))); got.status != 200 {
			t.Errorf("duo_workflow with its token: %+v", got)
		}
		// The same token at the AI gateway (chosen by host) has the wrong audience.
		if got := outcomeOf(p.check(t, req("/v2/code/completions", dwsTok, nil))); got.reason != "invalid_token" {
			t.Errorf("ai_gateway with a duo workflow token: %+v", got)
		}
		// duo_workflow accepts only the gitlab issuer.
		userDWS := "Bearer " + mint(t, userKey, "gitlab-ai-gateway", []string{"gitlab-duo-workflow-service"}, "duo_workflow_execute_workflow")
		if got := outcomeOf(p.check(t, req("/DuoWorkflow/ExecuteWorkflow", userDWS, ext, "x-gitlab-global-user-id", instanceID))); got.reason != "invalid_token" {
			t.Errorf("duo_workflow with a token of an issuer it does not accept: %+v", got)
		}
	})

	t.Run("dry-run backend allows and reports", func(t *testing.T) {
		resp := p.check(t, req("/v2/code/generations", good, map[string]string{"backend": "ai_gateway_shadow"}))
		md := resp.GetDynamicMetadata().GetFields()
		if resp.GetOkResponse() == nil || md["dry_run"].GetStringValue() != "true" || md["would_deny_reason"].GetStringValue() != "insufficient_scope" {
			t.Errorf("dry-run: %v", resp)
		}
		p.waitMetric(t, `ccauthz_dry_run_would_deny_total\{backend="ai_gateway_shadow",reason="insufficient_scope"\} 1`)
	})

	t.Run("broken catalog keeps the last good one", func(t *testing.T) {
		up := filepath.Join(dir, "catalog", "unit_primitives", "complete_code.yml")
		orig, err := os.ReadFile(up)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, up, "name: complete_code\nbogus_field: [\n")
		p.waitMetric(t, `ccauthz_reloads_total\{result="failure"\} [1-9]`)
		p.waitMetric(t, `ccauthz_last_reload_successful 0`)
		if got := outcomeOf(p.check(t, req("/v2/code/completions", good, nil))); got.status != 200 {
			t.Errorf("old snapshot stopped serving: %+v", got)
		}
		if !strings.Contains(p.stderr.String(), "keeping the last good snapshot") {
			t.Error("reload failure not logged")
		}
		writeFile(t, up, string(orig))
		p.waitMetric(t, `ccauthz_last_reload_successful 1`)
		// SIGHUP reloads too.
		before := p.stderr.String()
		_ = p.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(strings.TrimPrefix(p.stderr.String(), before), `"trigger":"SIGHUP"`) {
			if time.Now().After(deadline) {
				t.Fatal("SIGHUP did not reload")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("key rotation and issuer outage", func(t *testing.T) {
		// GitLab's runbook: publish the new key next to the old one, let
		// validators refresh, then sign with it, then drop the old key.
		keyB := newKey(t)
		tokB := "Bearer " + mint(t, keyB, gitlabIss, aud, "complete_code")
		gitlab.serve(t, keyA, keyB)
		p.waitOutcome(t, req("/v2/code/completions", tokB, nil), 200)
		gitlab.serve(t, keyB)
		freshA := "Bearer " + mint(t, keyA, gitlabIss, aud, "complete_code", "duo_chat")
		p.waitOutcome(t, req("/v2/code/completions", freshA, nil), 401)
		// The issuer goes down: the last good keys keep verifying.
		gitlab.fail.Store(true)
		p.waitMetric(t, `ccauthz_key_fetch_failures_total\{issuer="gitlab"\} [1-9]`)
		if got := outcomeOf(p.check(t, req("/v2/code/completions", tokB, nil))); got.status != 200 {
			t.Errorf("during the outage: %+v", got)
		}
		gitlab.fail.Store(false)
		current = tokB
	})

	t.Run("SIGTERM during bounded load fails no in-flight check", func(t *testing.T) {
		var ok, unavailable atomic.Int64
		var wrong atomic.Value
		var wg sync.WaitGroup
		stopAt := time.Now().Add(3 * time.Second)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000 && time.Now().Before(stopAt); i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					resp, err := p.client.Check(ctx, req("/v2/code/completions", current, nil))
					cancel()
					switch {
					case err == nil && resp.GetOkResponse() != nil:
						ok.Add(1)
					case err == nil:
						wrong.Store(fmt.Sprintf("denied: %v", resp))
					case status.Code(err) == codes.Unavailable:
						// Not accepted: the listener had closed. Never an in-flight failure.
						unavailable.Add(1)
						return
					default:
						wrong.Store(err.Error())
					}
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		if err := p.stop(t); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		wg.Wait()
		if w := wrong.Load(); w != nil {
			t.Errorf("a check failed during the drain: %v", w)
		}
		if ok.Load() == 0 {
			t.Error("no check succeeded")
		}
		t.Logf("drain took %v; %d checks ok, %d workers saw the closed listener", time.Since(start), ok.Load(), unavailable.Load())
		logs := p.stderr.String()
		if !strings.Contains(logs, `"msg":"draining"`) || !strings.Contains(logs, `"msg":"stopped"`) {
			t.Errorf("drain not logged:\n%s", tail(logs, 5))
		}
	})
}
