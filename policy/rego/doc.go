// Package rego holds the hand-written core Rego module of every ccauthz
// policy (package ccauthz.main), embedded so the binary carries it. The core
// owns the decision: precedence, status codes, bodies, WWW-Authenticate and
// the rate-limit entries. Everything specific to a catalog and a manifest
// comes from the generated package ccauthz.generated (policy/regogen); this
// package must not know any route or unit primitive.
package rego

import "embed"

//go:embed core.rego
var files embed.FS

// CoreFile is the core module's file name, as it appears in messages and in
// `ccauthz policy build` output.
const CoreFile = "core.rego"

// Core returns the source of the core module.
func Core() string {
	b, err := files.ReadFile(CoreFile)
	if err != nil {
		// The file is embedded at build time; it cannot be missing.
		return ""
	}
	return string(b)
}
