package main

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestSubcommandDispatch: every command with subcommands answers help,
// nothing and an unknown subcommand the same way.
func TestSubcommandDispatch(t *testing.T) {
	for _, cmd := range []string{"catalog", "policy", "keys", "token", "ratelimit"} {
		t.Run(cmd, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, cmd)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, "ccauthz "+cmd) {
				t.Errorf("no subcommand: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			code, stdout, stderr = runCLI(t, cmd, "--help")
			if code != exitOK || stderr != "" || !strings.Contains(stdout, "ccauthz "+cmd) {
				t.Errorf("--help: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			code, stdout, stderr = runCLI(t, cmd, "frobnicate")
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, `ccauthz `+cmd+`: unknown subcommand "frobnicate"`) {
				t.Errorf("unknown: exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}
}

// TestEveryCommandHelp: one dispatcher behaviour for every command and
// subcommand: -h and --help print the usage to stdout and exit 0; an unknown
// flag prints the problem to stderr (nothing to stdout) and exits 2.
func TestEveryCommandHelp(t *testing.T) {
	leaves := [][]string{{"serve"}, {"version"}, {"explain"}}
	for name := range commands() {
		if name == "serve" || name == "version" || name == "explain" {
			continue
		}
		_, usage, _ := runCLI(t, name, "-h")
		// Every subcommand the usage lists is a leaf to check.
		for _, m := range regexp.MustCompile(`(?m)^  (?:ccauthz `+name+` )?([a-z][a-z-]+)\b`).FindAllStringSubmatch(usage, -1) {
			leaves = append(leaves, []string{name, m[1]})
		}
	}
	seen := map[string]bool{}
	for _, l := range leaves {
		seen[strings.Join(l, " ")] = true
	}
	for _, want := range []string{"catalog validate", "catalog list", "catalog show", "catalog scopes", "policy build",
		"policy eval", "policy test", "keys generate", "keys jwks", "token mint", "token inspect",
		"ratelimit config", "ratelimit envoy-actions", "serve", "version", "explain"} {
		if !seen[want] {
			t.Errorf("usage texts do not list %q (found %v)", want, leaves)
		}
	}
	for _, l := range leaves {
		name := strings.Join(l, " ")
		for _, h := range []string{"-h", "--help"} {
			code, stdout, stderr := runCLI(t, append(l, h)...)
			if code != exitOK || stderr != "" || !strings.Contains(stdout, "usage") {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", name, h, code, stdout, stderr)
			}
		}
		code, stdout, stderr := runCLI(t, append(l, "--no-such-flag")...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "flag provided but not defined: -no-such-flag") {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
	}
	code, stdout, stderr := runCLI(t, "-h")
	if code != exitOK || stderr != "" || !strings.Contains(stdout, "usage: ccauthz <command>") {
		t.Errorf("ccauthz -h: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t)
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "usage: ccauthz <command>") {
		t.Errorf("ccauthz: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestVersion: the version command names ccauthz's, Go's and OPA's versions.
func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != exitOK || !regexp.MustCompile(`^ccauthz \S+\ncommit: \S+\ngo: `+regexp.QuoteMeta(runtime.Version())+`\nopa: \d+\.\d+\.\d+\n$`).MatchString(stdout) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	if code, _, _ := runCLI(t, "version", "extra"); code != exitUsage {
		t.Errorf("version extra: exit %d", code)
	}
}
