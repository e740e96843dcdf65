package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// The real-gateway end-to-end tests: the shipped gateway config, run by the
// real gateway on loopback, in front of an upstream that echoes what it got,
// with the real ccauthz binary deciding.

const (
	e2eInstanceID = "00000000-0000-4000-8000-0000000e2e01"
	e2eRealm      = "self-managed"
)

// lockedBuffer is an io.Writer safe for a process's output and the test.
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

// ccauthzProc is a running `ccauthz serve` with the dev issuer.
type ccauthzProc struct {
	cmd      *exec.Cmd
	done     chan error
	stderr   *lockedBuffer
	http     string // HTTP check listener address
	admin    string
	issuer   *devissuer.Issuer
	stopOnce sync.Once
}

// ccauthzBuild builds the binary once for every gateway test of this run.
var ccauthzBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the shared build after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if ccauthzBuild.dir != "" {
		os.RemoveAll(ccauthzBuild.dir)
	}
	os.Exit(code)
}

func ccauthzBinary(t *testing.T) string {
	t.Helper()
	b := &ccauthzBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "ccauthz-e2e-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "ccauthz")
		if out, err := exec.Command("go", "build", "-o", b.bin, "../cmd/ccauthz").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// startCcauthz serves the embedded default (example catalog, AI gateway
// manifest, dev issuer) on free loopback ports.
func startCcauthz(t *testing.T) *ccauthzProc {
	t.Helper()
	bin := ccauthzBinary(t)
	state := filepath.Join(t.TempDir(), "state")
	is, err := devissuer.Ensure(state)
	if err != nil {
		t.Fatal(err)
	}
	p := &ccauthzProc{done: make(chan error, 1), stderr: &lockedBuffer{}, issuer: is}
	p.cmd = exec.Command(bin, "serve", "--state-dir", state, "--grpc", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--http", "127.0.0.1:0")
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("ccauthz stderr:\n%s", tail(p.stderr.String(), 15))
		}
	})
	serving := regexp.MustCompile(`"msg":"serving","grpc":"[^"]+","admin":"([^"]+)","http":"([^"]+)"`)
	waitFor(t, 60*time.Second, "ccauthz to serve", func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("ccauthz exited (%v):\n%s", err, tail(p.stderr.String(), 30))
		default:
		}
		m := serving.FindStringSubmatch(p.stderr.String())
		if m != nil {
			p.admin, p.http = m[1], m[2]
		}
		return m != nil
	})
	waitFor(t, 30*time.Second, "ccauthz /readyz", func() bool {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// stop sends SIGTERM once and waits for the exit; a process that does not
// stop is killed and the test fails.
func (p *ccauthzProc) stop(t *testing.T) {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Error("ccauthz did not stop within 20s of SIGTERM")
		}
	})
}

// token mints a dev instance token with the given scopes.
func (p *ccauthzProc) token(t *testing.T, scopes ...string) string {
	t.Helper()
	tok, err := p.issuer.Mint(e2eInstanceID, e2eRealm, scopes, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// decision asks ccauthz's JSON API what it decides for a request, the
// reference the gateway's answer is compared with.
func (p *ccauthzProc) decision(t *testing.T, method, path string, headers map[string]string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"backend": "ai_gateway", "method": method, "path": path, "host": "cloud.gitlab.com", "headers": headers})
	resp, err := http.Post("http://"+p.http+"/v1/check", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /v1/check: %d %v", resp.StatusCode, err)
	}
	return d
}

// echoUpstream is the protected backend: it answers 200 with the request
// headers it received as JSON and counts its requests.
type echoUpstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
}

func startEcho(t *testing.T) *echoUpstream {
	t.Helper()
	e := &echoUpstream{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		e.last.Store(r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// freeAddr returns a loopback address that was free a moment ago; nginx
// cannot be handed a listening socket, so the port is closed and reused.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startNginx runs deploy/nginx/example.conf with its three addresses moved
// to the test's and returns the address clients connect to.
func startNginx(t *testing.T, bin, ccauthzHTTP, upstream string) string {
	t.Helper()
	listen := freeAddr(t)
	conf := nginxPrefix(t, map[string]string{
		"listen 127.0.0.1:8080": "listen " + listen,
		"server 127.0.0.1:9192": "server " + ccauthzHTTP,
		"server 127.0.0.1:5052": "server " + upstream,
		"worker_processes 1;":   "worker_processes 1;\ndaemon off;",
	})
	cmd := exec.Command(bin, "-e", "stderr", "-p", filepath.Dir(conf)+"/", "-c", conf)
	// SIGQUIT: graceful shutdown of master and workers.
	startGateway(t, "nginx", cmd, syscall.SIGQUIT, listen)
	return listen
}

// startGateway starts a gateway process, stops it with stop when the test
// ends (killing it after 10 s), shows its log if the test failed, and waits
// until it listens on listen (failing at once if it exits).
func startGateway(t *testing.T, name string, cmd *exec.Cmd, stop os.Signal, listen string) {
	t.Helper()
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(logs.String(), 20))
		}
	})
	waitFor(t, 10*time.Second, name+" to listen on "+listen, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited (%v):\n%s", name, err, logs.String())
		default:
		}
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

type gatewayAnswer struct {
	status  int
	body    string
	headers http.Header
}

func send(t *testing.T, method, url string, headers map[string]string) gatewayAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "cloud.gitlab.com"
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return gatewayAnswer{resp.StatusCode, string(b), resp.Header}
}

// TestNginxEndToEnd runs deploy/nginx/example.conf in the real nginx.
func TestNginxEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ccauthz and runs nginx")
	}
	bin := nginxBinary(t)
	cc := startCcauthz(t)
	up := startEcho(t)
	gw := "http://" + startNginx(t, bin, cc.http, strings.TrimPrefix(up.srv.URL, "http://")) + "/ai"
	// nginx cannot pass a status other than 401/403 from auth_request: the
	// error page answers 503 when ccauthz is unreachable.
	testGateway(t, cc, up, gw, 503, `{"error":"Authorization service unavailable"}`, false)
}

// TestCaddyEndToEnd runs deploy/caddy/Caddyfile in the real Caddy.
func TestCaddyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ccauthz and runs caddy")
	}
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy is not installed (apt-get install caddy; .ci/run does it in CI)")
	}
	cc := startCcauthz(t)
	up := startEcho(t)
	gw := "http://" + startCaddy(t, bin, cc.http, strings.TrimPrefix(up.srv.URL, "http://")) + "/ai"
	// forward_auth answers an unreachable auth service with its own 502.
	testGateway(t, cc, up, gw, 502, "", false)
}

// startCaddy runs deploy/caddy/Caddyfile with its three addresses moved to
// the test's and returns the address clients connect to.
func startCaddy(t *testing.T, bin, ccauthzHTTP, upstream string) string {
	t.Helper()
	b, err := os.ReadFile("caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	_, port, _ := net.SplitHostPort(listen)
	conf := string(b)
	for from, to := range map[string]string{
		"http://:8080":                 "http://:" + port,
		"forward_auth 127.0.0.1:9192":  "forward_auth " + ccauthzHTTP,
		"reverse_proxy 127.0.0.1:5052": "reverse_proxy " + upstream,
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("caddy/Caddyfile: %q not found; the test's address replacement is stale", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	startGateway(t, "caddy", cmd, syscall.SIGTERM, listen)
	return listen
}

// testGateway proves, through a gateway at gw: allowed requests reach the
// upstream with ccauthz's headers (over client-forged ones); denied requests
// get the decision's status, body and WWW-Authenticate and never reach it;
// with ccauthz stopped, requests fail with downStatus (and downBody when
// set) and never reach it.
// resolvesPath is true for a gateway that resolves dot segments and
// backslashes itself before it asks ccauthz (a Worker's WHATWG URL parser):
// an ambiguous target then reaches ccauthz already resolved, is judged on
// that path and may be denied by the policy instead of refused with 400.
func testGateway(t *testing.T, cc *ccauthzProc, up *echoUpstream, gw string, downStatus int, downBody string, resolvesPath bool) {
	tok := cc.token(t, "complete_code")
	identity := map[string]string{
		"Authorization":                "Bearer " + tok,
		"X-Gitlab-Authentication-Type": "oidc",
		"X-Gitlab-Instance-Id":         e2eInstanceID,
		"X-Gitlab-Realm":               e2eRealm,
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range identity {
			out[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(out, k)
				continue
			}
			out[k] = v
		}
		return out
	}

	t.Run("allowed reaches the upstream with ccauthz's headers", func(t *testing.T) {
		before := up.hits.Load()
		a := send(t, "POST", gw+"/v2/code/completions?x=1", with(map[string]string{
			"X-Ccauthz-Unit-Primitive": "forged", "X-Ccauthz-Subject": "forged", "X-Ccauthz-Backend": "forged"}))
		if a.status != 200 || up.hits.Load() != before+1 {
			t.Fatalf("status %d, upstream hits %d: %s", a.status, up.hits.Load()-before, a.body)
		}
		r := up.last.Load()
		if r.URL.RequestURI() != "/v2/code/completions?x=1" {
			t.Errorf("upstream got %s, want the prefix stripped", r.URL.RequestURI())
		}
		if got := r.Header.Values("X-Ccauthz-Unit-Primitive"); len(got) != 1 || got[0] != "complete_code" {
			t.Errorf("X-Ccauthz-Unit-Primitive = %q, want ccauthz's complete_code only", got)
		}
		if got := r.Header.Values("X-Ccauthz-Subject"); len(got) != 1 || got[0] != e2eInstanceID {
			t.Errorf("X-Ccauthz-Subject = %q, want the verified subject", got)
		}
		if r.Header.Get("X-Ccauthz-Decision-Id") == "" || r.Header.Get("X-Ccauthz-Issuer") == "" {
			t.Errorf("upstream headers lack the decision id or issuer: %v", r.Header)
		}
		if r.Header.Get("Authorization") != "Bearer "+tok {
			t.Error("the Authorization header did not reach the upstream")
		}
	})

	denials := []struct {
		name         string
		method, path string
		headers      map[string]string
		status       int
	}{
		{"401 no token", "POST", "/v2/code/completions", with(map[string]string{"Authorization": ""}), 401},
		{"401 bad token", "POST", "/v2/code/completions", with(map[string]string{"Authorization": "Bearer " + tok + "x"}), 401},
		{"403 missing scope", "POST", "/v2/code/generations", identity, 403},
		{"400 missing unit primitive header", "POST", "/v1/proxy/anthropic/v1/messages", with(map[string]string{}), 400},
	}
	for _, tc := range denials {
		t.Run("denied "+tc.name, func(t *testing.T) {
			want := cc.decision(t, tc.method, tc.path, tc.headers)
			if want["enforced_allow"] != false || int(want["status"].(float64)) != tc.status {
				t.Fatalf("fixture: ccauthz decides %v, want a %d denial", want, tc.status)
			}
			before := up.hits.Load()
			a := send(t, tc.method, gw+tc.path, tc.headers)
			if up.hits.Load() != before {
				t.Error("a denied request reached the upstream")
			}
			wantBody, _ := json.Marshal(want["body"])
			if a.status != tc.status || a.body != string(wantBody) {
				t.Errorf("gateway answered %d %s, want the decision's %d %s", a.status, a.body, tc.status, wantBody)
			}
			if ct := a.headers.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if a.headers.Get("X-Ccauthz-Decision-Id") == "" || a.headers.Get("X-Ccauthz-Status") != "" || a.headers.Get("X-Ccauthz-Body") != "" {
				t.Errorf("denial headers %v", a.headers)
			}
			wantWWW, _ := want["response_headers"].(map[string]any)["www-authenticate"].(string)
			if got := a.headers.Values("Www-Authenticate"); (wantWWW == "" && len(got) != 0) || (wantWWW != "" && (len(got) != 1 || got[0] != wantWWW)) {
				t.Errorf("WWW-Authenticate %q, want %q once", got, wantWWW)
			}
		})
	}

	t.Run("denied 429 rate limited with Retry-After", func(t *testing.T) {
		// Its own instance, so its bucket is fresh: the embedded default
		// limits each instance per unit primitive (600/min with no seat
		// count in the example manifest).
		const instance = "00000000-0000-4000-8000-0000000e2e42"
		tok, err := cc.issuer.Mint(instance, e2eRealm, []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		hs := with(map[string]string{"Authorization": "Bearer " + tok, "X-Gitlab-Instance-Id": instance})
		before, allowed := up.hits.Load(), int64(0)
		for i := 0; i < 1000; i++ {
			a := send(t, "POST", gw+"/v2/code/completions", hs)
			switch a.status {
			case 200:
				allowed++
				continue
			case 429:
			default:
				t.Fatalf("request %d: %d %s", i, a.status, a.body)
			}
			if up.hits.Load() != before+allowed {
				t.Errorf("upstream hits +%d, want only the %d allowed", up.hits.Load()-before, allowed)
			}
			if ra := a.headers.Get("Retry-After"); ra == "" || strings.Trim(ra, "0123456789") != "" || a.headers.Get("Content-Type") != "application/json" {
				t.Errorf("429 headers %v: want a Retry-After in seconds and a JSON body", a.headers)
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || len(body) == 0 || a.headers.Get("X-Ccauthz-Status") != "" {
				t.Errorf("429 body %q, headers %v", a.body, a.headers)
			}
			return
		}
		t.Skip("1000 requests were never rate limited: the embedded default no longer limits instances")
	})

	t.Run("traversal and encoding corpus", func(t *testing.T) { testPathCorpus(t, cc, up, gw, with(nil), resolvesPath) })

	t.Run("ccauthz unreachable fails closed", func(t *testing.T) {
		cc.stop(t)
		before := up.hits.Load()
		a := send(t, "POST", gw+"/v2/code/completions", identity)
		if a.status != downStatus || (downBody != "" && a.body != downBody) || up.hits.Load() != before {
			t.Errorf("got %d %s (upstream hits +%d), want %d %s and no upstream call", a.status, a.body, up.hits.Load()-before, downStatus, downBody)
		}
	})
}

// pathCorpus are request targets under the gateway's /ai prefix: judged is
// the canonical path ccauthz decides on ("" when it refuses the request),
// allowed whether a complete_code token gets through.
var gatewayPathCorpus = []struct {
	target  string
	judged  string
	allowed bool
}{
	{"/v2/code/completions", "/v2/code/completions", true},
	{"/v2/code/generations/../completions?x=1", "/v2/code/completions", true},
	{"/v1/proxy/anthropic/../../../v2/code/completions", "/v2/code/completions", true},
	{"/v1/proxy/anthropic/x/../../../../v2/code/generations", "/v2/code/generations", false},
	{"/v2/code/completions/../generations", "/v2/code/generations", false},
	{"/v2/code/%63ompletions", "/v2/code/completions", true},
	{"/v2/code/%2e%2E/code/./completions", "/v2/code/completions", true},
	{"/v2//code///completions", "/v2/code/completions", true},
	{"/v2/code/completions%2F..%2Fgenerations", "", false},
	{"/v2/code/completions%5c..%5Cgenerations", "", false},
	{`/v2/code/completions\..\generations`, "", false},
	{"/v2/code/completions%00", "", false},
	{"/%c0%ae%c0%ae/v2/code/completions", "", false},
	{"/v2/code/completions/..;/generations", "", false},
	{"/v2/code/generations//../completions", "", false},
}

// testPathCorpus sends each corpus target as a raw request line through the
// gateway and proves that no request reaches the upstream on a route other
// than the one ccauthz judged: whatever the upstream served is, in
// canonical form, the path ccauthz decided on, and has its route.
func testPathCorpus(t *testing.T, cc *ccauthzProc, up *echoUpstream, gw string, headers map[string]string, resolvesPath bool) {
	addr, prefix, _ := strings.Cut(strings.TrimPrefix(gw, "http://"), "/")
	prefix = "/" + prefix
	for _, tc := range gatewayPathCorpus {
		before := up.hits.Load()
		status, body := sendRaw(t, addr, "POST", prefix+tc.target, headers)
		reached := up.hits.Load() != before
		switch {
		case tc.allowed && (status != 200 || !reached):
			t.Errorf("%s: %d %s (upstream reached %v), want it allowed through", tc.target, status, body, reached)
			continue
		case !tc.allowed && tc.judged != "" && (status == 200 || reached):
			t.Errorf("%s: %d (upstream reached %v), want the policy's denial", tc.target, status, reached)
			continue
		case tc.judged == "" && !reached && resolvesPath && status >= 400 && status < 500:
			// Resolved by the gateway, then denied by the policy on the
			// resolved path: closed, and nothing reached the upstream.
		case tc.judged == "" && !reached && status != 400:
			// ccauthz refuses it with 400; nginx answers 400 itself for
			// some encodings.
			t.Errorf("%s: %d %s, want 400", tc.target, status, body)
		case tc.judged == "" && reached:
			// The gateway resolved it before asking (Caddy cleans the
			// path when it strips the prefix): allowed only if what it
			// forwarded is what ccauthz judged, checked below.
			t.Logf("%s: the gateway normalised it before the check", tc.target)
		}
		if !reached {
			continue
		}
		r := up.last.Load()
		served, query, _ := strings.Cut(r.RequestURI, "?")
		judgedPath := r.Header.Get("X-Ccauthz-Path")
		if tc.judged != "" && judgedPath != tc.judged {
			t.Errorf("%s: ccauthz judged %q (X-Ccauthz-Path upstream), want %q", tc.target, judgedPath, tc.judged)
		}
		// What the upstream served is the judged path up to RFC 3986
		// equivalence (Caddy keeps a client's %63 for "c"): no dot
		// segment, "//" or encoded slash left for the backend to resolve.
		if canon, err := requestpath.Default().Path(served); err != nil || canon != judgedPath {
			t.Errorf("%s: upstream served %q (canonical %q, %v), ccauthz judged %q", tc.target, served, canon, err, judgedPath)
		}
		if _, wantQuery, _ := strings.Cut(tc.target, "?"); query != wantQuery {
			t.Errorf("%s: upstream got query %q, want %q as sent", tc.target, query, wantQuery)
		}
		judged := cc.decision(t, "POST", judgedPath, headers)
		servedDecision := cc.decision(t, "POST", served, headers)
		if judged["route"] == "" || judged["route"] != servedDecision["route"] {
			t.Errorf("%s: judged route %v, the upstream served route %v", tc.target, judged["route"], servedDecision["route"])
		}
	}
}

// sendRaw writes one HTTP/1.1 request with target exactly as given (a Go
// client would clean or escape it) and returns the status and body.
func sendRaw(t *testing.T, addr, method, target string, headers map[string]string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: cloud.gitlab.com\r\nContent-Length: 0\r\nConnection: close\r\n")
	for k, v := range headers {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
