package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// fakeAuthz sheds every third check with ccauthz's 503 overloaded answer,
// lets every third one exceed the caller's deadline and allows the rest.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	n atomic.Int64
}

func (f *fakeAuthz) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	switch f.n.Add(1) % 3 {
	case 0:
		md, _ := structpb.NewStruct(map[string]any{"reason": "overloaded"})
		return &authv3.CheckResponse{Status: &status.Status{Code: 14}, DynamicMetadata: md}, nil
	case 1:
		<-ctx.Done()
		return nil, ctx.Err()
	}
	md, _ := structpb.NewStruct(map[string]any{"reason": "allowed"})
	return &authv3.CheckResponse{Status: &status.Status{}, DynamicMetadata: md}, nil
}

// issuerKeyFile writes a new P-256 issuer key the mix can sign with.
func issuerKeyFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := jwks.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// serveOnLoopback serves srv over gRPC on a free loopback port until the
// test ends and returns its address.
func serveOnLoopback(t *testing.T, srv authv3.AuthorizationServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// TestOpenLoopClassifies runs the open loop for a bounded 1 s at 60 req/s
// against a fake on loopback and expects every request sent once and
// classified: answered, shed, or timed out.
func TestOpenLoopClassifies(t *testing.T) {
	keyFile := issuerKeyFile(t)
	fake := &fakeAuthz{}
	target := serveOnLoopback(t, fake)

	var out bytes.Buffer
	o := options{target: target, duration: time.Second, conns: 1, maxRequests: 1000, check: false, jsonOut: true,
		rate: 60, callTimeout: 100 * time.Millisecond, maxOutstanding: 100,
		mix: mixOptions{keyFile: keyFile, issuer: "https://issuer.test", audience: "gitlab-ai-gateway", tokens: 2, users: 1, requests: 10}}
	if err := runOpen(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	var res openResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := res.Answered + res.Shed + res.Timeouts + res.Errors + res.NotSent; got != 60 || fake.n.Load() != 60 {
		t.Fatalf("60 requests offered, %d accounted, %d received: %+v", got, fake.n.Load(), res)
	}
	if res.Answered != 20 || res.Shed != 20 || res.Timeouts != 20 || res.Errors != 0 {
		t.Errorf("want 20 of each kind: %+v", res)
	}
	// soak.sh reads a run's figure as the first match of its key: every
	// key a window shares with the run must come before the windows.
	js := out.String()
	for _, key := range []string{"box_busy", "box_steal", "timeouts", "shed", "errors", "p99_ms"} {
		if i, w := strings.Index(js, `"`+key+`":`), strings.Index(js, `"windows":`); i < 0 || i > w {
			t.Errorf("%q at %d, after the windows at %d: %s", key, i, w, js)
		}
	}
	sent := 0
	for _, w := range res.Windows {
		sent += w.Sent
	}
	if sent != 60 {
		t.Errorf("windows add up to %d sent", sent)
	}
}

// allowAll allows every check.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
	n atomic.Int64
}

func (a *allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.n.Add(1)
	return &authv3.CheckResponse{Status: &status.Status{}}, nil
}

// TestOpenLoopWarmupCounted: the closed-loop warm-up before the open loop
// sends checks, and its wrong decisions (here: a target that allows the
// requests built to be denied) are reported and fail the run, not dropped
// with the unmeasured warm-up.
func TestOpenLoopWarmupCounted(t *testing.T) {
	keyFile := issuerKeyFile(t)
	fake := &allowAll{}
	target := serveOnLoopback(t, fake)

	var out bytes.Buffer
	o := options{target: target, duration: 500 * time.Millisecond, warmup: 200 * time.Millisecond,
		concurrency: 2, conns: 1, maxRequests: 1000, check: true, jsonOut: true,
		rate: 20, callTimeout: time.Second, maxOutstanding: 100,
		mix: mixOptions{keyFile: keyFile, issuer: "https://issuer.test", audience: "gitlab-ai-gateway", tokens: 2, users: 1,
			requests: 20, denyPercent: 50}}
	if err := runOpen(context.Background(), o, &out); err != nil {
		t.Fatal(err) // -json reports wrong decisions in the object; the caller judges
	}
	var res openResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if res.WarmupWrong == 0 || res.WarmupErrors != 0 || res.WrongAnswer == 0 {
		t.Errorf("want wrong decisions in the warm-up and the run, no errors: %+v", res)
	}
	if sent := res.Answered + res.Shed + res.Timeouts + res.Errors + res.NotSent; fake.n.Load() <= sent {
		t.Errorf("the target received %d checks, the open loop sent %d: no warm-up checks", fake.n.Load(), sent)
	}
	for _, w := range res.Windows {
		if w.LagMs < 0 || w.LoadCPU < 0 {
			t.Errorf("window %d: negative lateness or CPU: %+v", w.Second, w)
		}
		if w.BoxBusy < 0 || w.BoxBusy > 1 || w.BoxSteal < 0 || w.BoxSteal > w.BoxBusy {
			t.Errorf("window %d: box busy %v, steal %v: want 0 ≤ steal ≤ busy ≤ 1", w.Second, w.BoxBusy, w.BoxSteal)
		}
	}
	if res.BoxBusy < 0 || res.BoxBusy > 1 || res.BoxSteal > res.BoxBusy || res.LoadCPUPerK < 0 {
		t.Errorf("run: box busy %v, steal %v, generator %v ms per 1k checks", res.BoxBusy, res.BoxSteal, res.LoadCPUPerK)
	}
	if res.TargetCPUPerK != 0 {
		t.Errorf("no -target-pid, yet target CPU %v ms per 1k checks", res.TargetCPUPerK)
	}
	// The table output fails the run and names the warm-up's share.
	o.jsonOut = false
	if err := runOpen(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "in the warm-up") {
		t.Errorf("want a wrong-decisions error naming the warm-up, got %v", err)
	}
}
