package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPolicyTestExamples: the suites `policy build` writes pass under
// `policy test` for both example manifests, and the summary counts them.
func TestPolicyTestExamples(t *testing.T) {
	for _, m := range []string{"ai_gateway", "duo_workflow"} {
		t.Run(m, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "policy")
			if code, _, stderr := runCLI(t, "policy", "build", "--manifest", m, "--out", out); code != exitOK {
				t.Fatalf("build: exit %d: %s", code, stderr)
			}
			// Coverage tracing is slow under -race: only on the smaller suite.
			args := []string{"policy", "test", out}
			if m == "duo_workflow" {
				args = append(args, "--coverage")
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			sum := regexp.MustCompile(`: (\d+) passed, 0 failed, 0 errors, 0 skipped \((\d+) tests\)\n`).FindStringSubmatch(stdout)
			if sum == nil || sum[1] != sum[2] || sum[1] == "0" {
				t.Fatalf("no passing summary in:\n%s", stdout)
			}
			if m != "duo_workflow" {
				return
			}
			// A summary, not a dump: the policy files and the total.
			if !regexp.MustCompile(`(?m)^  coverage +\d+\.\d+%  core\.rego \(\d+ of \d+ lines\)$`).MatchString(stdout) ||
				!regexp.MustCompile(`(?m)^coverage: \d+\.\d+%$`).MatchString(stdout) ||
				strings.Contains(stdout, "_test.rego") || len(stdout) > 2000 {
				t.Errorf("coverage summary:\n%s", stdout)
			}
			// --run narrows the run to the matching tests.
			code, stdout, _ = runCLI(t, "policy", "test", out, "--run", "test_allow")
			n := regexp.MustCompile(`: (\d+) passed`).FindStringSubmatch(stdout)
			if code != exitOK || n == nil || n[1] == "0" || n[1] == sum[1] {
				t.Errorf("--run: exit %d, %s (all: %s)", code, stdout, sum[1])
			}
			code, _, stderr = runCLI(t, "policy", "test", out, "--run", "^no_such_test$")
			if code != exitPolicyTests || !strings.Contains(stderr, "no test ran") {
				t.Errorf("--run matching nothing: exit %d, %s", code, stderr)
			}
		})
	}
}

// TestPolicyTestFailure: a broken test fails the run with exit 3 and is
// named with its position; -v prints the passing ones too.
func TestPolicyTestFailure(t *testing.T) {
	out := filepath.Join(t.TempDir(), "policy")
	if code, _, stderr := runCLI(t, "policy", "build", "--manifest", "ai_gateway", "--out", out); code != exitOK {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	broken := "package ccauthz.broken_test\n\ntest_broken if {\n\t1 == 2\n}\n\ntest_fine if {\n\t1 == 1\n}\n"
	if err := os.WriteFile(filepath.Join(out, "tests", "broken_test.rego"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "policy", "test", out)
	if code != exitPolicyTests {
		t.Fatalf("exit %d, want %d:\n%s", code, exitPolicyTests, stdout)
	}
	if !regexp.MustCompile(`(?m)^FAIL  \S*broken_test\.rego:3: data\.ccauthz\.broken_test\.test_broken `).MatchString(stdout) ||
		!strings.Contains(stdout, " passed, 1 failed, 0 errors") || strings.Contains(stdout, "PASS ") {
		t.Errorf("output:\n%s", stdout)
	}
	_, stdout, _ = runCLI(t, "policy", "test", out, "-v", "--run", "broken_test")
	if !strings.Contains(stdout, "PASS  data.ccauthz.broken_test.test_fine") || !strings.Contains(stdout, "1 passed, 1 failed") {
		t.Errorf("-v output:\n%s", stdout)
	}
}

// TestPolicyTestBadInput: a directory that is not a policy is invalid input
// (exit 1), not a test failure.
func TestPolicyTestBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing", []string{"policy", "test", filepath.Join(dir, "nope")}, exitInvalid, "no such file or directory"},
		{"empty", []string{"policy", "test", dir}, exitInvalid, "holds no .rego files"},
		{"no dir", []string{"policy", "test"}, exitUsage, "want exactly one DIR"},
		{"bad regex", []string{"policy", "test", dir, "--run", "("}, exitUsage, "--run:"},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, stderr, tc.code, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "x.rego"), []byte("package x\n\nallow if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "policy", "test", dir); code != exitInvalid || !strings.Contains(stderr, "x.rego:") {
		t.Errorf("syntax error: exit %d, %s", code, stderr)
	}
}
