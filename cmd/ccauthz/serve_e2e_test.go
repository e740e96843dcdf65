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
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

// The end-to-end tests build the real binary once (into the top test's temp
// dir), e2eStart it on free loopback ports and always stop it.

func TestServeE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "ccauthz")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("default prints an allow and a deny", func(t *testing.T) { testServeDefault(t, bin) })
	t.Run("invalid config", func(t *testing.T) { testServeInvalidConfig(t, bin) })
	t.Run("issuer down from the e2eStart", func(t *testing.T) { testServeIssuerDown(t, bin) })
	t.Run("global dry-run", func(t *testing.T) { testServeGlobalDryRun(t, bin) })
	t.Run("configured backends", func(t *testing.T) { testServeConfigured(t, bin) })
	t.Run("rolling restart under load", func(t *testing.T) { testServeRollingRestart(t, bin) })
	t.Run("TLS and mTLS", func(t *testing.T) { testServeTLS(t, bin) })
	t.Run("reflection only in the embedded default", func(t *testing.T) { testServeDefaultReflection(t, bin) })
}

// e2eProc is a started ccauthz serve.
type e2eProc struct {
	cmd    *exec.Cmd
	grpc   string
	admin  string
	http   string // "" when the HTTP check listener is off
	stdout *e2eBuffer
	stderr *e2eBuffer
	done   chan error
	conn   *grpc.ClientConn
	client authv3.AuthorizationClient
}

type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *e2eBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *e2eBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func e2eStart(t *testing.T, bin string, args ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{stdout: &e2eBuffer{}, stderr: &e2eBuffer{}, done: make(chan error, 1)}
	// Port 0: the kernel picks free ports and the server logs them, so no
	// other process can take a port between choosing and binding it.
	p.cmd = exec.Command(bin, append([]string{"serve", "--grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"}, args...)...)
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
			t.Logf("stderr of ccauthz (last lines):\n%s", e2eTail(p.stderr.String(), 12))
		}
	})
	serving := regexp.MustCompile(`"msg":"serving","grpc":"([^"]+)","admin":"([^"]+)","http":"([^"]*)"`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := serving.FindStringSubmatch(p.stderr.String()); m != nil {
			p.grpc, p.admin, p.http = m[1], m[2], m[3]
			break
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("ccauthz exited (%v) before serving:\n%s", err, e2eTail(p.stderr.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ccauthz did not log its listeners:\n%s", e2eTail(p.stderr.String(), 30))
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

func e2eTail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits; a process that does not stop is killed and
// the test fails.
func (p *e2eProc) stop(t *testing.T) error {
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

func (p *e2eProc) get(path string) (int, string) {
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *e2eProc) waitHTTP(t *testing.T, path string, want int) string {
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
			t.Fatalf("ccauthz exited (%v) before %s answered %d:\n%s", err, path, want, e2eTail(p.stderr.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d", path, code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMetric polls /metrics until a line matches re.
func (p *e2eProc) waitMetric(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := p.get("/metrics")
		if rx.MatchString(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metric matches %s:\n%s", re, e2eGrepLines(body, "ccauthz_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func e2eGrepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func (p *e2eProc) check(t *testing.T, r *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.client.Check(ctx, r)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// waitOutcome repeats a check until it answers status (key caches refresh
// on their own schedule), failing after a deadline.
func (p *e2eProc) waitOutcome(t *testing.T, r *authv3.CheckRequest, status int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := e2eOutcomeOf(p.check(t, r))
		if got.status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %+v, want status %d", got, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// e2eOutcome is what a response says, for table comparisons.
type e2eOutcome struct {
	status int // 200 on allow
	reason string
	body   string // JSON body on deny
}

func e2eOutcomeOf(resp *authv3.CheckResponse) e2eOutcome {
	md := resp.GetDynamicMetadata().GetFields()
	o := e2eOutcome{status: 200, reason: md["reason"].GetStringValue()}
	if d := resp.GetDeniedResponse(); d != nil {
		o.status = int(d.GetStatus().GetCode())
		o.body = d.GetBody()
	}
	return o
}

func testServeDefault(t *testing.T, bin string) {
	state := filepath.Join(t.TempDir(), "state")
	p := e2eStart(t, bin, "--state-dir", state)
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
	var got []e2eOutcome
	for _, c := range cmds {
		if c[2] != p.grpc {
			t.Errorf("command targets %s, want %s", c[2], p.grpc)
		}
		e2eReq := &authv3.CheckRequest{}
		if err := protojson.Unmarshal([]byte(c[1]), e2eReq); err != nil {
			t.Fatalf("printed request is not a CheckRequest: %v", err)
		}
		got = append(got, e2eOutcomeOf(p.check(t, e2eReq)))
	}
	want := []e2eOutcome{
		{200, "allowed", ""},
		{403, "insufficient_scope", `{"detail":"Unauthorized to access code generations"}`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	e2eReplayCurl(t, p, out)
	for path, mode := range map[string]os.FileMode{
		filepath.Join(state, "dev-issuer"):                    0o700 | os.ModeDir,
		filepath.Join(state, "dev-issuer", "signing-key.pem"): 0o600,
	} {
		if info, err := os.Stat(path); err != nil || info.Mode() != mode {
			t.Errorf("%s: %v %v, want mode %v", path, info.Mode(), err, mode)
		}
	}
	// The ccauthz.v1 API is on (the listeners are loopback): the catalog
	// being served, over gRPC and as JSON on the admin listener.
	bs, err := ccauthzv1.NewCatalogServiceClient(p.conn).ListBackends(context.Background(), &ccauthzv1.ListBackendsRequest{})
	if err != nil || len(bs.GetBackends()) != len(catalog.Example().BackendServices) || bs.GetCatalog().GetDigest() != catalog.Example().Digest() {
		t.Errorf("CatalogService.ListBackends = %v, %v", bs, err)
	}
	resp, err := http.Post("http://"+p.admin+"/api/ccauthz.v1.CatalogService/Grant", "application/json", strings.NewReader(`{"add_ons":["duo_pro"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"complete_code"`) {
		t.Errorf("admin Grant: %d %s", resp.StatusCode, body)
	}
	// DecisionService.Explain on the serving process: over gRPC, as JSON on
	// the admin listener and through `ccauthz explain --server`. Explain
	// logs no decision (the count below stays 4).
	ex, err := ccauthzv1.NewDecisionServiceClient(p.conn).Explain(context.Background(), &ccauthzv1.ExplainRequest{
		Method: "POST", Path: "/v2/code/completions", Host: "cloud.gitlab.com"})
	if err != nil || ex.GetDecision().GetReason() != "missing_authorization" || len(ex.GetTrace()) == 0 {
		t.Errorf("DecisionService.Explain = %v, %v", ex, err)
	}
	resp, err = http.Post("http://"+p.admin+"/api/ccauthz.v1.DecisionService/Explain", "application/json",
		strings.NewReader(`{"method": "POST", "path": "/v9/none", "host": "cloud.gitlab.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"reason": "missing_authorization"`) && !strings.Contains(string(body), `"reason":"missing_authorization"`) {
		t.Errorf("admin Explain: %d %s", resp.StatusCode, body)
	}
	if code, stdout, stderr := runCLI(t, "explain", "--server", p.grpc, "--method", "POST", "--path", "/v2/code/completions", "--host", "cloud.gitlab.com"); code != exitOK ||
		!strings.HasPrefix(stdout, "decision: DENY 401 missing_authorization\n") {
		t.Errorf("explain --server: exit %d\n%s\n%s", code, stdout, stderr)
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
	if n := strings.Count(logs, `"msg":"decision"`); n != 4 {
		t.Errorf("%d decision logs, want 4 (2 gRPC, 2 HTTP)", n)
	}
	tok := regexp.MustCompile(`Bearer ([A-Za-z0-9_.-]+)`).FindStringSubmatch(out)[1]
	// The docs' curl examples read $TOKEN: make run prints the line to set it.
	if !strings.Contains(out, "\nexport TOKEN="+tok+"\n") {
		t.Errorf("no export TOKEN line for the printed token:\n%s", out)
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, strings.Split(tok, ".")[2]) {
		t.Error("the token was logged")
	}
	if err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// e2eReplayCurl sends the two printed curl commands (JSON API allow,
// forward-auth deny) as curl would and checks their answers.
func e2eReplayCurl(t *testing.T, p *e2eProc, out string) {
	t.Helper()
	m := regexp.MustCompile(`curl -s http://(\S+)/v1/check -d '([^']+)'`).FindStringSubmatch(out)
	if m == nil || m[1] != p.http {
		t.Fatalf("no JSON API curl command for %s:\n%s", p.http, out)
	}
	resp, err := http.Post("http://"+m[1]+"/v1/check", "application/x-www-form-urlencoded", strings.NewReader(m[2]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"enforced_allow":true`) || !strings.Contains(string(body), `"reason":"allowed"`) {
		t.Errorf("printed JSON API check: %d %s", resp.StatusCode, body)
	}

	m = regexp.MustCompile(`curl -si http://(\S+)/v1/auth/forward((?: -H '[^']+')+)`).FindStringSubmatch(out)
	if m == nil || m[1] != p.http {
		t.Fatalf("no forward-auth curl command for %s:\n%s", p.http, out)
	}
	req, _ := http.NewRequest("GET", "http://"+m[1]+"/v1/auth/forward", nil)
	for _, h := range regexp.MustCompile(`-H '([^:]+): ([^']*)'`).FindAllStringSubmatch(m[2], -1) {
		req.Header.Set(h[1], h[2])
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(body) != `{"detail":"Unauthorized to access code generations"}` {
		t.Errorf("printed forward-auth check: %d %s", resp.StatusCode, body)
	}
}

func testServeInvalidConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	e2eWriteFile(t, cfg, "catalog: embedded:example\nbackends: [{name: ai_gateway}]\nissuers: []\nlogging: {level: loud}\n")
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

// e2eKeyServer is an httptest JWKS endpoint whose keys can rotate and which
// can fail.
type e2eKeyServer struct {
	srv  *httptest.Server
	set  atomic.Pointer[[]byte]
	fail atomic.Bool
}

func e2eNewKeyServer(t *testing.T, keys ...crypto.Signer) *e2eKeyServer {
	ks := &e2eKeyServer{}
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

func (ks *e2eKeyServer) serve(t *testing.T, keys ...crypto.Signer) {
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

func e2eNewKey(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func e2eWriteFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	e2eInstanceID = "2b7d1a70-5e43-4d8c-9f0a-1c2d3e4f5a6b"
	e2eGitlabIss  = "https://gitlab.example.test"
)

func e2eMint(t *testing.T, key crypto.Signer, iss string, aud []string, scopes ...string) string {
	t.Helper()
	tok, err := token.Mint(key, token.MintClaims{
		Issuer: iss, Subject: e2eInstanceID, Audience: aud, Scopes: scopes,
		Realm: "self-managed", InstanceID: e2eInstanceID, TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// e2eReq builds the CheckRequest Envoy sends for a request from the instance.
func e2eReq(path, auth string, ext map[string]string, extra ...string) *authv3.CheckRequest {
	h := map[string]string{
		":method": "POST", ":path": path, ":authority": "cloud.gitlab.com",
		"x-gitlab-authentication-type": "oidc", "x-gitlab-instance-id": e2eInstanceID, "x-gitlab-realm": "self-managed",
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

func testServeIssuerDown(t *testing.T, bin string) {
	key := e2eNewKey(t)
	ks := e2eNewKeyServer(t, key)
	ks.fail.Store(true)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers:
  - {name: gitlab, issuer: %s, jwks_url: %s, keys: {refresh_floor: 1s, fetch_timeout: 1s, unknown_kid_interval: 1s}}
`, e2eGitlabIss, ks.srv.URL))
	p := e2eStart(t, bin, "--config", cfg)
	body := p.waitHTTP(t, "/readyz", 503)
	if !strings.Contains(body, "issuer gitlab") {
		t.Errorf("/readyz does not say why: %q", body)
	}
	h, err := healthpb.NewHealthClient(p.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "ai_gateway"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health = %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
	tok := e2eMint(t, key, e2eGitlabIss, []string{"gitlab-ai-gateway"}, "complete_code")
	got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", "Bearer "+tok, nil)))
	want := e2eOutcome{503, "keys_unavailable", `{"error":"Authentication keys unavailable"}`}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	// The issuer recovers: the server becomes ready and allows.
	ks.fail.Store(false)
	p.waitHTTP(t, "/readyz", 200)
	if got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", "Bearer "+tok, nil))); got.status != 200 {
		t.Errorf("after recovery: %v", got)
	}
	p.waitMetric(t, `ccauthz_key_fetch_failures_total\{issuer="gitlab"\} [1-9]`)
}

func testServeGlobalDryRun(t *testing.T, bin string) {
	key := e2eNewKey(t)
	set, err := jwks.MarshalJWKS([]crypto.PublicKey{key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e2eWriteFile(t, filepath.Join(dir, "jwks.json"), string(set))
	cfg := filepath.Join(dir, "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: gitlab, issuer: %s, jwks_file: jwks.json}]
dry_run: true
`, e2eGitlabIss))
	p := e2eStart(t, bin, "--config", cfg)
	p.waitHTTP(t, "/readyz", 200)
	tok := "Bearer " + e2eMint(t, key, e2eGitlabIss, []string{"gitlab-ai-gateway"}, "complete_code")
	for _, tc := range []struct {
		req       *authv3.CheckRequest
		wouldDeny string
	}{
		{e2eReq("/v2/code/completions", tok, nil), ""},
		{e2eReq("/v2/code/generations", tok, nil), "insufficient_scope"},
		{e2eReq("/v2/code/completions", "", nil), "missing_authorization"},
	} {
		resp := p.check(t, tc.req)
		md := resp.GetDynamicMetadata().GetFields()
		if resp.GetOkResponse() == nil || md["dry_run"].GetStringValue() != "true" || md["would_deny_reason"].GetStringValue() != tc.wouldDeny {
			t.Errorf("%s: %v", tc.req.GetAttributes().GetRequest().GetHttp().GetPath(), resp)
		}
	}
	// Faults are never relaxed by dry-run.
	if got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", tok, map[string]string{"backend": "nope"}))); got.status != 403 {
		t.Errorf("unknown backend in dry-run: %+v", got)
	}
	p.waitMetric(t, `ccauthz_dry_run_would_deny_total\{backend="ai_gateway",reason="missing_authorization"\} 1`)
	if n := strings.Count(p.stderr.String(), `"dry_run":true`); n < 2 {
		t.Errorf("%d dry-run decisions logged, want the 2 would-deny ones at least", n)
	}
}

func e2eCopyFS(t *testing.T, fsys fs.FS, dst string) {
	t.Helper()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		e2eWriteFile(t, filepath.Join(dst, path), string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testServeConfigured(t *testing.T, bin string) {
	keyA, userKey := e2eNewKey(t), e2eNewKey(t)
	gitlab := e2eNewKeyServer(t, keyA)
	aigw := e2eNewKeyServer(t, userKey)
	dir := t.TempDir()
	e2eCopyFS(t, catalog.ExampleFS(), filepath.Join(dir, "catalog"))
	// The example manifests with the prompt registry they name.
	e2eCopyFS(t, manifest.ExampleFS(), dir)
	e2eWriteFile(t, filepath.Join(dir, "extra", "deny.rego"), `package ccauthz.extra

deny contains "Blocked by local policy" if {
	input.request.headers["x-block-me"] == "yes"
}
`)
	cfg := filepath.Join(dir, "ccauthz.yaml")
	e2eWriteFile(t, cfg, fmt.Sprintf(`catalog: catalog
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
`, e2eGitlabIss, gitlab.srv.URL, aigw.srv.URL))
	p := e2eStart(t, bin, "--config", cfg)
	p.waitHTTP(t, "/readyz", 200)

	aud := []string{"gitlab-ai-gateway"}
	good := "Bearer " + e2eMint(t, keyA, e2eGitlabIss, aud, "complete_code", "duo_chat")
	forged := "Bearer " + e2eMint(t, e2eNewKey(t), e2eGitlabIss, aud, "complete_code")
	userTok := "Bearer " + e2eMint(t, userKey, "gitlab-ai-gateway", aud, "complete_code", "generate_code")
	// current is a token of the issuer's currently published key (the
	// rotation subtest moves it to the new key).
	current := good

	t.Run("every denial reason with the AI gateway's bodies", func(t *testing.T) {
		tests := []struct {
			name string
			req  *authv3.CheckRequest
			want e2eOutcome
		}{
			{"allowed", e2eReq("/v2/code/completions", good, nil), e2eOutcome{200, "allowed", ""}},
			{"public route", e2eReq("/monitoring/healthz", "", nil, ":method", "GET"), e2eOutcome{200, "public", ""}},
			{"missing authorization", e2eReq("/v2/code/completions", "", nil),
				e2eOutcome{401, "missing_authorization", `{"error":"No authorization header presented"}`}},
			{"not bearer", e2eReq("/v2/code/completions", "Basic dXNlcjpwdw==", nil),
				e2eOutcome{401, "invalid_authorization_header", `{"error":"Invalid authorization header"}`}},
			{"not oidc", e2eReq("/v2/code/completions", good, nil, "x-gitlab-authentication-type", ""),
				e2eOutcome{401, "invalid_authentication_type", `{"error":"Invalid authentication token type - only OIDC is supported"}`}},
			{"forged token", e2eReq("/v2/code/completions", forged, nil),
				e2eOutcome{401, "invalid_token", `{"error":"Forbidden by auth provider"}`}},
			{"realm mismatch", e2eReq("/v2/code/completions", good, nil, "x-gitlab-realm", "saas"),
				e2eOutcome{401, "header_mismatch", `{"error":"Header mismatch 'X-Gitlab-Realm'"}`}},
			{"no route", e2eReq("/v9/nothing", good, nil), e2eOutcome{404, "no_route", `{"detail":"Not Found"}`}},
			{"user token on a route that refuses it", e2eReq("/v2/code/generations", userTok, nil, "x-gitlab-global-user-id", e2eInstanceID),
				e2eOutcome{403, "issuer_not_allowed", `{"detail":"Unauthorized to access code generations"}`}},
			{"proxy without unit primitive", e2eReq("/v1/proxy/anthropic/v1/messages", good, nil),
				e2eOutcome{400, "missing_unit_primitive_header", `{"detail":"Missing x-gitlab-unit-primitive header"}`}},
			{"proxy with unknown unit primitive", e2eReq("/v1/proxy/anthropic/v1/messages", good, nil, "x-gitlab-unit-primitive", "make_coffee"),
				e2eOutcome{400, "unknown_unit_primitive", `{"detail":"Unknown unit primitive header make_coffee"}`}},
			{"proxy with a unit primitive it does not serve", e2eReq("/v1/proxy/anthropic/v1/messages", good, nil, "x-gitlab-unit-primitive", "complete_code"),
				e2eOutcome{400, "unit_primitive_not_allowed", `{"detail":"This endpoint cannot be used for complete_code purpose"}`}},
			{"missing scope", e2eReq("/v2/code/generations", good, nil),
				e2eOutcome{403, "insufficient_scope", `{"detail":"Unauthorized to access code generations"}`}},
			{"extra Rego", e2eReq("/v2/code/completions", good, nil, "x-block-me", "yes"),
				e2eOutcome{403, "extra_policy_deny", `{"detail":"Blocked by local policy"}`}},
			{"unknown backend", e2eReq("/v2/code/completions", good, map[string]string{"backend": "nope"}),
				e2eOutcome{403, "unknown_backend", `{"error":"No protected backend is configured for this request"}`}},
		}
		for _, tc := range tests {
			resp := p.check(t, tc.req)
			if got := e2eOutcomeOf(resp); got != tc.want {
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
		p.waitMetric(t, `ccauthz_checks_total\{backend="ai_gateway",decision="deny",mode="grpc",reason="header_mismatch"\} 1`)
	})

	t.Run("context extension selects among backends", func(t *testing.T) {
		dwsTok := "Bearer " + e2eMint(t, keyA, e2eGitlabIss, []string{"gitlab-duo-workflow-service"}, "duo_workflow_execute_workflow")
		ext := map[string]string{"backend": "duo_workflow"}
		if got := e2eOutcomeOf(p.check(t, e2eReq("/DuoWorkflow/ExecuteWorkflow", dwsTok, ext))); got.status != 200 {
			t.Errorf("duo_workflow with its token: %+v", got)
		}
		// The same token at the AI gateway (chosen by host) has the wrong audience.
		if got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", dwsTok, nil))); got.reason != "invalid_token" {
			t.Errorf("ai_gateway with a duo workflow token: %+v", got)
		}
		// duo_workflow accepts only the gitlab issuer.
		userDWS := "Bearer " + e2eMint(t, userKey, "gitlab-ai-gateway", []string{"gitlab-duo-workflow-service"}, "duo_workflow_execute_workflow")
		if got := e2eOutcomeOf(p.check(t, e2eReq("/DuoWorkflow/ExecuteWorkflow", userDWS, ext, "x-gitlab-global-user-id", e2eInstanceID))); got.reason != "invalid_token" {
			t.Errorf("duo_workflow with a token of an issuer it does not accept: %+v", got)
		}
	})

	t.Run("dry-run backend allows and reports", func(t *testing.T) {
		resp := p.check(t, e2eReq("/v2/code/generations", good, map[string]string{"backend": "ai_gateway_shadow"}))
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
		e2eWriteFile(t, up, "name: complete_code\nbogus_field: [\n")
		p.waitMetric(t, `ccauthz_reloads_total\{result="failure"\} [1-9]`)
		p.waitMetric(t, `ccauthz_last_reload_successful 0`)
		if got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", good, nil))); got.status != 200 {
			t.Errorf("old snapshot stopped serving: %+v", got)
		}
		if !strings.Contains(p.stderr.String(), "keeping the last good snapshot") {
			t.Error("reload failure not logged")
		}
		e2eWriteFile(t, up, string(orig))
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
		keyB := e2eNewKey(t)
		tokB := "Bearer " + e2eMint(t, keyB, e2eGitlabIss, aud, "complete_code")
		gitlab.serve(t, keyA, keyB)
		p.waitOutcome(t, e2eReq("/v2/code/completions", tokB, nil), 200)
		gitlab.serve(t, keyB)
		freshA := "Bearer " + e2eMint(t, keyA, e2eGitlabIss, aud, "complete_code", "duo_chat")
		p.waitOutcome(t, e2eReq("/v2/code/completions", freshA, nil), 401)
		// The issuer goes down: the last good keys keep verifying.
		gitlab.fail.Store(true)
		p.waitMetric(t, `ccauthz_key_fetch_failures_total\{issuer="gitlab"\} [1-9]`)
		if got := e2eOutcomeOf(p.check(t, e2eReq("/v2/code/completions", tokB, nil))); got.status != 200 {
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
					resp, err := p.client.Check(ctx, e2eReq("/v2/code/completions", current, nil))
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
		e2eStart := time.Now()
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
		t.Logf("drain took %v; %d checks ok, %d workers saw the closed listener", time.Since(e2eStart), ok.Load(), unavailable.Load())
		logs := p.stderr.String()
		if !strings.Contains(logs, `"msg":"draining"`) || !strings.Contains(logs, `"msg":"stopped"`) {
			t.Errorf("drain not logged:\n%s", e2eTail(logs, 5))
		}
	})
}
