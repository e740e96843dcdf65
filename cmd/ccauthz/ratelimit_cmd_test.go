package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
