package main

import (
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
