package main

import (
	"context"
	"fmt"
)

// runCatalog is a placeholder until the catalog subcommand lands.
func runCatalog(_ context.Context, e *env, _ []string) int {
	fmt.Fprintln(e.stderr, "ccauthz catalog: not implemented yet")
	return exitUsage
}
