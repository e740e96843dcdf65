package main

import (
	"context"
	"fmt"
)

// runRatelimit is a placeholder until the ratelimit subcommand lands.
func runRatelimit(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "ccauthz ratelimit: not implemented yet")
	return exitUsage
}
