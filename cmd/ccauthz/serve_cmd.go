package main

import (
	"context"
	"fmt"
)

// runServe is a placeholder until the serve subcommand lands.
func runServe(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "ccauthz serve: not implemented yet")
	return exitUsage
}
