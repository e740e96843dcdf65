package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// engine is a running envoyproxy/ratelimit service backed by its own Redis,
// both on loopback ports, stopped when the test ends.
type engine struct {
	client rlsv3.RateLimitServiceClient
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ratelimitBinary finds envoyproxy/ratelimit's service_cmd: $CCAUTHZ_RATELIMIT_BIN,
// or bin/tools/service_cmd at the module root, where .ci/run installs it.
func ratelimitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CCAUTHZ_RATELIMIT_BIN"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../bin/tools/service_cmd")
	if err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("envoyproxy/ratelimit is not installed: .ci/run installs it into bin/tools " +
		"(GOBIN=$PWD/bin/tools go install github.com/envoyproxy/ratelimit/src/service_cmd@" + RatelimitVersion + ")")
	return ""
}

// RatelimitVersion is the envoyproxy/ratelimit version the end-to-end test is
// run against (the repository has no tags; this is its module pseudo-version).
const RatelimitVersion = "v1.4.1-0.20260122083618-3fb702589d36"

// startEngine starts Redis and envoyproxy/ratelimit with config (a ratelimit
// YAML file) and waits until the service answers.
func startEngine(t *testing.T, config []byte) *engine {
	t.Helper()
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server; .ci/run does it in CI)")
	}
	rlBin := ratelimitBinary(t)
	dir := t.TempDir()

	redisPort := freePort(t)
	redis := exec.Command(redisBin, "--port", strconv.Itoa(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	var redisOut bytes.Buffer
	redis.Stdout, redis.Stderr = &redisOut, &redisOut
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = redis.Process.Kill(); _ = redis.Wait() })

	cfgDir := filepath.Join(dir, "runtime", "ratelimit", "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "ccauthz.yaml"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	grpcPort := freePort(t)
	rl := exec.Command(rlBin)
	// Every listener on loopback: the service binds 0.0.0.0 by default.
	rl.Env = append(os.Environ(),
		"USE_STATSD=false",
		"RUNTIME_ROOT="+filepath.Join(dir, "runtime"),
		"RUNTIME_SUBDIRECTORY=ratelimit",
		"RUNTIME_WATCH_ROOT=false",
		"REDIS_SOCKET_TYPE=tcp",
		"REDIS_URL=127.0.0.1:"+strconv.Itoa(redisPort),
		"HOST=127.0.0.1", "PORT="+strconv.Itoa(freePort(t)),
		"GRPC_HOST=127.0.0.1", "GRPC_PORT="+strconv.Itoa(grpcPort),
		"DEBUG_HOST=127.0.0.1", "DEBUG_PORT="+strconv.Itoa(freePort(t)),
		"LOG_LEVEL=warn",
	)
	var rlOut bytes.Buffer
	rl.Stdout, rl.Stderr = &rlOut, &rlOut
	// Redis must accept connections before ratelimit starts: it dials at once
	// and exits if it cannot.
	waitTCP(t, redisPort, &redisOut)
	if err := rl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rl.Process.Kill()
		_ = rl.Wait()
		if t.Failed() {
			t.Logf("ratelimit output:\n%s\nredis output:\n%s", rlOut.String(), redisOut.String())
		}
	})
	waitTCP(t, grpcPort, &rlOut)
	cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &engine{client: rlsv3.NewRateLimitServiceClient(cc)}
}

func waitTCP(t *testing.T, port int, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on 127.0.0.1:%d after 15s; output:\n%s", port, out.String())
}

// should asks the engine about one request carrying descriptors.
func (e *engine) should(t *testing.T, domain string, ds []*rlcommonv3.RateLimitDescriptor) rlsv3.RateLimitResponse_Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds})
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp.GetOverallCode()
}

func entries(kv ...string) *rlcommonv3.RateLimitDescriptor {
	d := &rlcommonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// TestEngineSmoke proves the distributed engine itself runs here, on
// loopback, with a per-instance limit: the first N requests pass, the next
// is over the limit, and another instance keeps its own counter.
func TestEngineSmoke(t *testing.T) {
	e := startEngine(t, []byte(`domain: smoke
descriptors:
  - key: backend
    value: ai_gateway
    descriptors:
      - key: instance_id
        rate_limit: {unit: hour, requests_per_unit: 2}
`))
	a := []*rlcommonv3.RateLimitDescriptor{entries("backend", "ai_gateway", "instance_id", "a")}
	b := []*rlcommonv3.RateLimitDescriptor{entries("backend", "ai_gateway", "instance_id", "b")}
	for i := 0; i < 2; i++ {
		if got := e.should(t, "smoke", a); got != rlsv3.RateLimitResponse_OK {
			t.Fatalf("request %d of instance a: %v, want OK", i+1, got)
		}
	}
	if got := e.should(t, "smoke", a); got != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("3rd request of instance a: %v, want OVER_LIMIT", got)
	}
	if got := e.should(t, "smoke", b); got != rlsv3.RateLimitResponse_OK {
		t.Fatalf("instance b: %v, want OK (its own counter)", got)
	}
}

// TestRatelimitVersionPinned keeps the Makefile's pin and this test's in step.
func TestRatelimitVersionPinned(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("RATELIMIT_VERSION := "+RatelimitVersion+"\n")) {
		t.Fatalf("Makefile does not pin envoyproxy/ratelimit at %s", RatelimitVersion)
	}
}
