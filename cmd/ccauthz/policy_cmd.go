package main

import (
	"context"
	"fmt"
)

// runPolicy is a placeholder until the policy subcommand lands.
func runPolicy(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "ccauthz policy: not implemented yet")
	return exitUsage
}
