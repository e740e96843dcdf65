package deploy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const workerUnavailable = `{"error":"Authorization service unavailable"}`

// workerdBinary finds Cloudflare's workerd: $CCAUTHZ_WORKERD, the copy
// `.ci/run` installs with npm under bin/tools/workerd, or PATH.
func workerdBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CCAUTHZ_WORKERD"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../bin/tools/workerd/node_modules/.bin/workerd"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("workerd"); err == nil {
		return p
	}
	t.Skip("workerd not installed (.ci/run installs it: npm install --prefix bin/tools/workerd workerd@<pinned>)")
	return ""
}

// startWorkerd serves cloudflare/worker.js in workerd with the config of
// cloudflare/workerd.capnp, its addresses moved to the test's, and returns
// the address clients connect to.
func startWorkerd(t *testing.T, bin, ccauthzHTTP, origin string, timeoutMS string) string {
	t.Helper()
	dir := t.TempDir()
	worker, err := os.ReadFile("cloudflare/worker.js")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile("cloudflare/workerd.capnp")
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	c := string(conf)
	for old, repl := range map[string]string{
		`"127.0.0.1:9192"`: `"` + ccauthzHTTP + `"`,
		`"127.0.0.1:5052"`: `"` + origin + `"`,
		`"127.0.0.1:8787"`: `"` + listen + `"`,
		`(name = "CCAUTHZ_TIMEOUT_MS", text = "250")`: `(name = "CCAUTHZ_TIMEOUT_MS", text = "` + timeoutMS + `")`,
	} {
		if !strings.Contains(c, old) {
			t.Fatalf("cloudflare/workerd.capnp lacks %s", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	if err := os.WriteFile(filepath.Join(dir, "worker.js"), worker, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "workerd.capnp"), []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "workerd.capnp"))
	startGateway(t, "workerd", cmd, syscall.SIGTERM, listen)
	return listen
}

// TestCloudflareWorkerEndToEnd runs deploy/cloudflare/worker.js in workerd
// in front of the real ccauthz and a stub origin: the same allow, deny,
// forged-header, rate-limit and ccauthz-down checks as nginx and Caddy.
func TestCloudflareWorkerEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ccauthz and runs workerd")
	}
	bin := workerdBinary(t)
	cc := startCcauthz(t)
	up := startEcho(t)
	gw := startWorkerd(t, bin, cc.http, up.srv.Listener.Addr().String(), "2000")
	testGateway(t, cc, up, "http://"+gw, 503, workerUnavailable, true)
}

// TestCloudflareWorkerFailsClosed points the Worker at stub ccauthz answers
// it must not trust: too slow, a server error, and a 200 that is not a
// decision. Each is a 503 and never reaches the origin.
func TestCloudflareWorkerFailsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs workerd")
	}
	bin := workerdBinary(t)
	up := startEcho(t)
	release := make(chan struct{})
	// The stub reads the case from the original headers in the check body.
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var check struct {
			Headers map[string]string `json:"headers"`
		}
		_ = json.NewDecoder(r.Body).Decode(&check)
		switch check.Headers["x-case"] {
		case "slow":
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"enforced_allow":true}`))
		case "error":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"enforced_allow":true}`))
		}
	}))
	defer stub.Close()
	defer close(release)
	gw := startWorkerd(t, bin, stub.Listener.Addr().String(), up.srv.Listener.Addr().String(), "300")

	for _, c := range []string{"slow", "error", "not-a-decision"} {
		t.Run(c, func(t *testing.T) {
			before := up.hits.Load()
			start := time.Now()
			a := send(t, "POST", "http://"+gw+"/v2/code/completions", map[string]string{"X-Case": c, "Authorization": "Bearer x"})
			if a.status != 503 || a.body != workerUnavailable || up.hits.Load() != before {
				t.Errorf("got %d %s (origin hits +%d), want 503 %s and no origin call", a.status, a.body, up.hits.Load()-before, workerUnavailable)
			}
			if took := time.Since(start); c == "slow" && took > 5*time.Second {
				t.Errorf("slow ccauthz: answered after %v, want about the 300 ms timeout", took)
			}
		})
	}
}
