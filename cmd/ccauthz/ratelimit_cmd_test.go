package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/server/assembly"
)

func TestRatelimitConfigMatchesGolden(t *testing.T) {
	code, out, errOut := policyCLI(t, "", "ratelimit", "config", "--manifest", "ai_gateway", "--manifest", "duo_workflow")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := os.ReadFile("../../authz/ratelimit/testdata/ratelimit_config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("ccauthz ratelimit config differs from the golden configuration:\n%s", out)
	}
	// --domain and --out.
	path := filepath.Join(t.TempDir(), "rl.yaml")
	if code, _, errOut := policyCLI(t, "", "ratelimit", "config", "--manifest", "ai_gateway", "--domain", "edge", "--out", path); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "\ndomain: edge\n") || strings.Contains(string(b), "duo_workflow") {
		t.Fatalf("--out file: %v\n%s", err, b)
	}
}

func TestRatelimitEnvoyActionsMatchesGolden(t *testing.T) {
	code, out, errOut := policyCLI(t, "", "ratelimit", "envoy-actions")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := os.ReadFile("../../authz/ratelimit/testdata/envoy_actions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("ccauthz ratelimit envoy-actions differs from the golden actions:\n%s", out)
	}
}

func TestRatelimitErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("backend: ai_gateway\nrate_limit:\n  auth_failures: {requests_per_unit: 0, unit: minute}\nroutes:\n  - {id: a, methods: [GET], path: /a, public: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ratelimit"}, exitUsage, "usage: ccauthz ratelimit"},
		{[]string{"ratelimit", "nope"}, exitUsage, `unknown subcommand "nope"`},
		{[]string{"ratelimit", "config"}, exitUsage, "--manifest is required"},
		{[]string{"ratelimit", "config", "--manifest", "ai_gateway", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"ratelimit", "config", "--manifest", bad}, exitInvalid, bad + ":3:38: requests_per_unit must be at least 1, got 0"},
		{[]string{"ratelimit", "config", "--manifest", "ai_gateway", "--manifest", "ai_gateway"}, exitInvalid, `backend "ai_gateway" has two manifests`},
		{[]string{"ratelimit", "config", "--manifest", "ai_gateway", "--domain", "a b"}, exitInvalid, `domain "a b" must be`},
		{[]string{"ratelimit", "envoy-actions", "--bogus"}, exitUsage, "flag provided but not defined"},
	}
	for _, c := range cases {
		code, _, errOut := policyCLI(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want %d; stderr %q does not contain %q", c.args, code, c.code, errOut, c.want)
		}
	}
}

// TestServeDefaultEnforcesRateLimits: the embedded default of `ccauthz
// serve` runs the local limiter with the example manifest's limits (60 code
// suggestions a minute per user), wired through assembly.
func TestServeDefaultEnforcesRateLimits(t *testing.T) {
	dir := t.TempDir()
	is, err := devissuer.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := serveDefaultConfig(dir, is)
	if !cfg.RateLimit.Local {
		t.Fatal("the embedded default must turn the local rate limiter on")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := assembly.New(ctx, cfg, assembly.Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	defer waitCancel()
	if err := a.Verifier.WaitReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	tok, err := is.Mint(devInstanceID, devRealm, []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	check := func() *authv3.CheckResponse {
		resp, err := a.Server.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "POST", Path: "/v2/code/completions", Host: devHost,
				Headers: map[string]string{
					"authorization": "Bearer " + tok, "x-gitlab-authentication-type": "oidc",
					"x-gitlab-instance-id": devInstanceID, "x-gitlab-realm": devRealm,
					"x-gitlab-global-user-id": "user-1",
				},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := 1; i <= 60; i++ {
		if resp := check(); resp.GetOkResponse() == nil {
			t.Fatalf("request %d of 60 a minute denied: %v", i, resp.GetDeniedResponse())
		}
	}
	resp := check()
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 429 {
		t.Fatalf("61st request in a minute: %v, want 429", resp)
	}
	if got := resp.GetDynamicMetadata().GetFields()["ratelimited_descriptor"].GetStringValue(); !strings.HasPrefix(got, "limit=per_user,backend=ai_gateway,rate_class=code_suggestions,") {
		t.Errorf("tripped descriptor %q", got)
	}
	mfs, err := a.Server.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var limited float64
	for _, mf := range mfs {
		if mf.GetName() == "ccauthz_rate_limited_total" {
			for _, m := range mf.GetMetric() {
				limited += m.GetCounter().GetValue()
			}
		}
	}
	if limited != 1 {
		t.Errorf("ccauthz_rate_limited_total = %v, want 1", limited)
	}
}
