package main

import (
	"context"
	"fmt"
)

// runKeys is a placeholder until the keys subcommand lands.
func runKeys(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "ccauthz keys: not implemented yet")
	return exitUsage
}
