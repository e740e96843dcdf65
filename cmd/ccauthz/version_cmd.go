package main

import (
	"context"
	"fmt"
	"runtime"

	opaversion "github.com/open-policy-agent/opa/v1/version"
)

const versionUsage = `usage: ccauthz version

Print ccauthz's version, the VCS commit it was built from, and the Go and OPA
versions linked in.
`

// runVersion implements `ccauthz version`.
func runVersion(_ context.Context, e *env, args []string) int {
	fs := policyFlagSet(e, "", versionUsage)
	fs.Init("ccauthz version", fs.ErrorHandling())
	pos, code, done := parseFlags(e, fs, args, false)
	if done {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(e.stderr, "ccauthz version: unexpected argument %q\n\n%s", pos[0], versionUsage)
		return exitUsage
	}
	bi := serveBuildInfo()
	fmt.Fprintf(e.stdout, "ccauthz %s\ncommit: %s\ngo: %s\nopa: %s\n", bi.Version, bi.Revision, runtime.Version(), opaversion.Version)
	return exitOK
}
