package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/proto/envoy"
)

// policyCLI runs ccauthz in-process with stdin and returns exit code, stdout
// and stderr.
func policyCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &stdout, stderr: &stderr, now: time.Now}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

const evalInput = `{
  "backend": "ai_gateway",
  "request": {"method": "POST", "path": "/v2/code/completions", "query": "", "host": "cloud.gitlab.com",
              "headers": {"X-Gitlab-Authentication-Type": "oidc", "x-gitlab-realm": "saas", "x-gitlab-instance-id": "i-1"}},
  "token": {"status": "valid", "reason": "ok", "issuer": "gitlab_com", "kind": "instance",
            "claims": {"sub": "i-1", "gitlab_realm": "saas", "scopes": %s}}
}`

func TestPolicyEval(t *testing.T) {
	dir := t.TempDir()
	allowFile := filepath.Join(dir, "allow.json")
	if err := os.WriteFile(allowFile, []byte(strings.Replace(evalInput, "%s", `["complete_code"]`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := policyCLI(t, "", "policy", "eval", "--manifest", "ai_gateway", "--input", allowFile)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if d["allow"] != true || d["route"] != "code_completions_v2" || d["reason"] != "allowed" {
		t.Errorf("decision %v", d)
	}
	// stdin, and a denial is still exit 0: the decision is the output.
	code, out, _ = policyCLI(t, strings.Replace(evalInput, "%s", `[]`, 1), "policy", "eval", "--manifest", "ai_gateway", "--input", "-")
	if code != exitOK || !strings.Contains(out, `"detail": "Unauthorized to access code completions"`) || !strings.Contains(out, `"status": 403`) {
		t.Errorf("exit %d, output %s", code, out)
	}
}

// TestPolicyEvalCanonicalPath is the example: a token with only
// duo_chat must not pass /v1/proxy/anthropic/../../../v2/code/generations
// as the proxy route; eval judges the path the backend serves.
func TestPolicyEvalCanonicalPath(t *testing.T) {
	in := strings.Replace(strings.Replace(evalInput, "%s", `["duo_chat"]`, 1),
		`"path": "/v2/code/completions"`, `"path": "/v1/proxy/anthropic/../../../v2/code/generations"`, 1)
	code, out, errOut := policyCLI(t, in, "policy", "eval", "--manifest", "ai_gateway", "--input", "-")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if d["allow"] != false || d["route"] == "proxy_anthropic" {
		t.Errorf("decision %v: the traversal was judged on the proxy route", d)
	}
	in = strings.Replace(strings.Replace(evalInput, "%s", `["complete_code"]`, 1), `"path": "/v2/code/completions"`, `"path": "/v2/code%2Fcompletions"`, 1)
	code, _, errOut = policyCLI(t, in, "policy", "eval", "--manifest", "ai_gateway", "--input", "-")
	if code != exitInvalid || !strings.Contains(errOut, "request.path: the request path has an encoded slash") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyEvalBadInput(t *testing.T) {
	code, _, errOut := policyCLI(t, `{"request": {"method": "GET", "path": "/x"}, "token": {"status": "fine"}}`,
		"policy", "eval", "--manifest", "ai_gateway", "--input", "-")
	if code != exitInvalid || !strings.Contains(errOut, `token.status "fine" must be one of`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyBuildWritesRunnableSuite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, errOut := policyCLI(t, "", "policy", "build", "--manifest", "duo_workflow", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "backend duo_workflow_service") {
		t.Errorf("summary: %s", stdout)
	}
	for _, f := range []string{"core.rego", "generated.rego", "tests/execute_workflow_test.rego", "tests/policy_test.rego"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	// A rebuild replaces the previous tests (a stale file disappears).
	stale := filepath.Join(out, "tests", "removed_route_test.rego")
	if err := os.WriteFile(stale, []byte("package x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := policyCLI(t, "", "policy", "build", "--manifest", "duo_workflow", "--out", out); code != exitOK {
		t.Fatalf("rebuild exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale test file survived a rebuild")
	}
	// A non-empty directory that holds no build is refused.
	foreign := t.TempDir()
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := policyCLI(t, "", "policy", "build", "--manifest", "duo_workflow", "--out", foreign); code != exitInvalid || !strings.Contains(errOut, "refusing") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyBuildInvalidManifest(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yaml")
	src := "backend: ai_gateway\nroutes:\n  - {id: a, methods: [POST], path: /a, unit_primitives: [no_such_up]}\n  - {id: b, methods: [get], path: /b, public: true}\n"
	if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := policyCLI(t, "", "policy", "build", "--manifest", m, "--out", filepath.Join(dir, "out"))
	if code != exitInvalid {
		t.Fatalf("exit %d", code)
	}
	want := m + `:4:23: method "get" must be one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT (upper case)`
	if strings.TrimSpace(errOut) != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	// Structure first, then the catalog: a structurally valid manifest with
	// an unknown unit primitive.
	src = "backend: ai_gateway\nroutes:\n  - {id: a, methods: [POST], path: /a, unit_primitives: [no_such_up]}\n"
	if err := os.WriteFile(m, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = policyCLI(t, "", "policy", "build", "--manifest", m, "--out", filepath.Join(dir, "out"))
	if code != exitInvalid || strings.TrimSpace(errOut) != m+`:3:58: unit primitive "no_such_up" is not in the catalog` {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyBuildRejectsForeignExtraPackage(t *testing.T) {
	extra := t.TempDir()
	if err := os.WriteFile(filepath.Join(extra, "open.rego"), []byte("package ccauthz.main\n\nx := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := policyCLI(t, "", "policy", "build", "--manifest", "ai_gateway", "--extra", extra, "--out", filepath.Join(t.TempDir(), "o"))
	if code != exitInvalid || !strings.Contains(errOut, "open.rego: package ccauthz.main: extra Rego modules must be in package ccauthz.extra") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"policy"},
		{"policy", "frobnicate"},
		{"policy", "build", "--manifest", "ai_gateway"},
		{"policy", "eval", "--input", "x.json"},
		{"policy", "build", "--nope"},
	} {
		if code, _, _ := policyCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	code, _, errOut := policyCLI(t, "", "policy", "eval", "--manifest", "no_such_example", "--input", "-")
	if code != exitInvalid || !strings.Contains(errOut, "not a bundled example (bundled: ai_gateway, duo_workflow)") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	code, _, errOut = policyCLI(t, "", "policy", "eval", "--manifest", "ai_gatewya", "--input", "-")
	if code != exitInvalid || !strings.Contains(errOut, `not a bundled example (did you mean "ai_gateway"?)`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyEvalBody(t *testing.T) {
	input := strings.Replace(evalInput, "%s", `["complete_code"]`, 1)
	dir := t.TempDir()
	bodyFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"prompt_components": [{"type": "code_editor_completion"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := policyCLI(t, input, "policy", "eval", "--manifest", "ai_gateway", "--input", "-", "--body", bodyFile)
	if code != exitOK || !strings.Contains(out, `"allow": true`) {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	withBody := strings.Replace(input, `"host": "cloud.gitlab.com",`, `"host": "cloud.gitlab.com", "body": {"a": 1},`, 1)
	withStatus := strings.Replace(input, `"host": "cloud.gitlab.com",`, `"host": "cloud.gitlab.com", "body_status": "too_large",`, 1)
	for _, in := range []string{withBody, withStatus} {
		code, _, errOut = policyCLI(t, in, "policy", "eval", "--manifest", "ai_gateway", "--input", "-", "--body", bodyFile)
		if code != exitInvalid || !strings.Contains(errOut, "request.body (or body_status) and --body both give the body; use one") {
			t.Errorf("both: exit %d: %s", code, errOut)
		}
	}
	code, _, errOut = policyCLI(t, input, "policy", "eval", "--manifest", "ai_gateway", "--input", "-", "--body", filepath.Join(dir, "none"))
	if code != exitInvalid || !strings.Contains(errOut, "--body: open") {
		t.Errorf("missing file: exit %d: %s", code, errOut)
	}
}

func TestBodyFile(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"request": {"method": "POST", "body": {"a": [1]}}}`:      true,
		`{"request": {"method": "POST", "body": null}}`:            true,
		`{"request": {"method": "POST", "body_status": "absent"}}`: true,
		`{"request": {"method": "POST"}}`:                          false,
		`[1]`:                                                      false,
		`{"request": 3}`:                                           false,
	} {
		if got := inputNamesBody([]byte(doc)); got != want {
			t.Errorf("inputNamesBody(%s) = %v, want %v", doc, got, want)
		}
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, envoy.DefaultMaxBodyBytes+100), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := readBodyFile(big)
	if err != nil || len(b.Data) != envoy.DefaultMaxBodyBytes+1 {
		t.Fatalf("read %d bytes, %v", len(b.Data), err)
	}
	if got := envoy.DecodeBody(b, envoy.DefaultMaxBodyBytes); got.Status != "too_large" {
		t.Errorf("status %q, want too_large", got.Status)
	}
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("a=b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err = readBodyFile(small); err != nil || envoy.DecodeBody(b, envoy.DefaultMaxBodyBytes).Status != "invalid" {
		t.Errorf("a non-JSON body file: %v %+v", err, b)
	}
}
