package assembly

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
)

const instance = "2b7d1a70-5e43-4d8c-9f0a-1c2d3e4f5a6b"

func assemble(tb testing.TB) (*Assembled, string) {
	tb.Helper()
	return assembleWith(tb, func(*config.Config) {})
}

// assembleWith is assemble with the config adjusted by edit first.
func assembleWith(tb testing.TB, edit func(*config.Config)) (*Assembled, string) {
	tb.Helper()
	dev, err := devissuer.Ensure(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = "embedded:example"
	cfg.Backends = []config.Backend{{Name: "ai_gateway", Manifest: "embedded:ai_gateway"}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	cfg.Logging.AllowSampleRate = 0
	edit(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		tb.Fatal(err)
	}
	tok, err := dev.Mint(instance, "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	return a, "Bearer " + tok
}

func checkRequest(path, auth string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Path: path, Host: "cloud.gitlab.com",
			Headers: map[string]string{
				":method": "POST", ":path": path, ":authority": "cloud.gitlab.com",
				"authorization": auth, "x-gitlab-authentication-type": "oidc",
				"x-gitlab-instance-id": instance, "x-gitlab-realm": "self-managed",
				"content-type": "application/json", "user-agent": "gitlab-rails",
			},
		}},
	}}
}

func TestAssembledDecides(t *testing.T) {
	a, auth := assemble(t)
	ctx := context.Background()
	if err := a.Server.Ready(); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth))
	if resp.GetOkResponse() == nil {
		t.Fatalf("want allow: %v", resp)
	}
	resp, _ = a.Server.Check(ctx, checkRequest("/v2/code/generations", auth))
	if resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
		t.Fatalf("want 403: %v", resp)
	}
	// A missing catalog file is a build error naming it; the server keeps serving.
	a.Config.Catalog = "/nonexistent/catalog"
	if err := a.Server.Reload(ctx, "test"); err == nil {
		t.Fatal("reload with a missing catalog must fail")
	}
	if resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth)); resp.GetOkResponse() == nil {
		t.Fatal("last good snapshot must keep serving")
	}
}

// BenchmarkCheckCachedToken is the whole in-process Check with the real
// verifier (token cached after the first call) and the real policy
// (decision cached), for an allow with allow-logging off. The request is
// built inside the loop, as gRPC would unmarshal a fresh one.
func BenchmarkCheckCachedToken(b *testing.B) {
	a, auth := assemble(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth))
		if resp.GetOkResponse() == nil {
			b.Fatal("not allowed")
		}
	}
}

var sink *authv3.CheckRequest

// BenchmarkRequestOnly is the share of BenchmarkCheckCachedToken spent
// building the request (what gRPC's unmarshalling would cost instead).
func BenchmarkRequestOnly(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = checkRequest("/v2/code/completions", "Bearer x")
	}
}

// TestAPIOn: the API is on by default only where a listener is loopback,
// and the config switch turns it on or off everywhere.
func TestAPIOn(t *testing.T) {
	for _, tc := range []struct {
		mode, addr string
		want       bool
	}{
		{"auto", "127.0.0.1:9191", true},
		{"auto", "127.1.2.3:0", true},
		{"auto", "[::1]:9191", true},
		{"auto", "localhost:9191", true},
		{"auto", "0.0.0.0:9191", false},
		{"auto", "[::]:9191", false},
		{"auto", ":9191", false},
		{"auto", "10.0.0.5:9191", false},
		{"auto", "not-an-address", false},
		{"on", "0.0.0.0:9191", true},
		{"off", "127.0.0.1:9191", false},
	} {
		if got := apiOn(tc.mode, tc.addr); got != tc.want {
			t.Errorf("apiOn(%q, %q) = %v, want %v", tc.mode, tc.addr, got, tc.want)
		}
	}
}
