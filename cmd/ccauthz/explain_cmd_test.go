package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ccauthz/ccauthz/authz/api"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/server/assembly"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

const explainInstance = "2b7d1a70-5e43-4d8c-9f0a-1c2d3e4f5a6b"

// explainDev is a dev issuer in a temporary state directory and a token it
// minted for complete_code, valid at fixedNow.
func explainDev(t *testing.T) (dir, tok string) {
	t.Helper()
	dir = t.TempDir()
	dev, err := devissuer.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = dev.Mint(explainInstance, "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, fixedNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tok
}

func explainHeaders(tok string) []string {
	return []string{"-H", "Authorization: Bearer " + tok, "-H", "X-Gitlab-Authentication-Type: oidc",
		"-H", "X-Gitlab-Instance-Id: " + explainInstance, "-H", "X-Gitlab-Realm: self-managed"}
}

func TestExplainOffline(t *testing.T) {
	dir, tok := explainDev(t)
	args := append([]string{"explain", "--state-dir", dir, "--method", "POST", "--path", "/v2/code/completions", "--host", "cloud.gitlab.com"}, explainHeaders(tok)...)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK || !strings.HasPrefix(stdout, "decision: ALLOW 200 allowed\n") || !strings.Contains(stdout, "pass  unit primitives") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, tok) || strings.Contains(stdout, strings.Split(tok, ".")[2]) {
		t.Fatalf("the token is printed:\n%s", stdout)
	}
	// A denial is a decision too (exit 0), and names what is missing.
	args = append([]string{"explain", "--state-dir", dir, "--format", "json", "--method", "POST", "--path", "/v2/code/generations", "--host", "cloud.gitlab.com"}, explainHeaders(tok)...)
	code, stdout, stderr = runCLI(t, args...)
	var got struct {
		Decision struct {
			Allow  bool   `json:"allow"`
			Status int    `json:"status"`
			Reason string `json:"reason"`
		} `json:"decision"`
		Trace []struct{ Name, Outcome, Detail string } `json:"trace"`
	}
	if code != exitOK || json.Unmarshal([]byte(stdout), &got) != nil {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	last := got.Trace[len(got.Trace)-1]
	if got.Decision.Allow || got.Decision.Status != 403 || got.Decision.Reason != "insufficient_scope" ||
		last.Outcome != "OUTCOME_FAIL" || !strings.Contains(last.Detail, "missing generate_code") {
		t.Fatalf("got %+v", got)
	}
}

func TestExplainConfigAndRequestFile(t *testing.T) {
	dir, tok := explainDev(t)
	dev, err := devissuer.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	jwks := dev.JWKSFile
	cfg := filepath.Join(dir, "ccauthz.yaml")
	writeExplainFile(t, cfg, `catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway, hosts: [cloud.gitlab.com]}]
issuers: [{name: dev, issuer: `+devissuer.IssuerURL+`, jwks_file: `+jwks+`, kind: instance}]
`)
	reqFile := filepath.Join(dir, "req.json")
	writeExplainFile(t, reqFile, `{"method": "POST", "path": "/v3/code/completions", "host": "cloud.gitlab.com",
  "headers": {"authorization": "Bearer `+tok+`", "x-gitlab-authentication-type": "oidc",
    "x-gitlab-instance-id": "`+explainInstance+`", "x-gitlab-realm": "self-managed"}}`)
	code, stdout, stderr := runCLI(t, "explain", "--config", cfg, "--request", reqFile)
	if code != exitOK || !strings.Contains(stdout, "body_missing") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	body := filepath.Join(dir, "body.json")
	writeExplainFile(t, body, `{"prompt_components": [{"type": "code_editor_completion"}]}`)
	args := append([]string{"explain", "--config", cfg, "--method", "POST", "--path", "/v3/code/completions", "--host", "cloud.gitlab.com", "--body", body, "-H", "Content-Type: application/json"}, explainHeaders(tok)...)
	code, stdout, stderr = runCLI(t, args...)
	if code != exitOK || !strings.HasPrefix(stdout, "decision: ALLOW") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestExplainBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	writeExplainFile(t, bad, `{"path": 3}`)
	badCfg := filepath.Join(dir, "bad.yaml")
	writeExplainFile(t, badCfg, "catalog: [\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"explain"}, exitUsage, "needs --path"},
		{[]string{"explain", "--path", "/", "-H", "nocolon"}, exitUsage, "want 'Name: value'"},
		{[]string{"explain", "--path", "/", "--format", "xml"}, exitUsage, "--format"},
		{[]string{"explain", "--path", "/", "--server", "x", "--config", "y"}, exitUsage, "exclusive"},
		{[]string{"explain", "--request", bad, "--path", "/"}, exitUsage, "exclusive"},
		{[]string{"explain", "--request", bad}, exitInvalid, "bad.json"},
		{[]string{"explain", "--request", filepath.Join(dir, "absent.json")}, exitInvalid, "absent.json"},
		{[]string{"explain", "--path", "/", "--body", filepath.Join(dir, "absent")}, exitInvalid, "--body"},
		{[]string{"explain", "--path", "/", "--config", badCfg}, exitInvalid, "bad.yaml"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d)\nstdout %s\nstderr %s", tc.args, code, tc.code, stdout, stderr)
		}
	}
}

// TestExplainServer asks a DecisionService on a loopback gRPC listener.
func TestExplainServer(t *testing.T) {
	dir, tok := explainDev(t)
	dev, err := devissuer.Ensure(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := assembly.New(ctx, serveDefaultConfig(dir, dev), assembly.Deps{Now: func() time.Time { return fixedNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	ccauthzv1.RegisterDecisionServiceServer(gs, api.NewDecisionService(func() api.Explainer { return a.Server.Explain }))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	args := append([]string{"explain", "--server", lis.Addr().String(), "--method", "POST", "--path", "/v2/code/completions", "--host", "cloud.gitlab.com"}, explainHeaders(tok)...)
	code, stdout, stderr := runCLI(t, args...)
	if code != exitOK || !strings.HasPrefix(stdout, "decision: ALLOW 200 allowed\n") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	gs.Stop()
	code, _, stderr = runCLI(t, "explain", "--server", lis.Addr().String(), "--path", "/")
	if code != exitInvalid || stderr == "" {
		t.Fatalf("stopped server: exit %d %s", code, stderr)
	}
}

func writeExplainFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
