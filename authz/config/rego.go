package config

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
)

// extraBuiltins decodes a backend's extra_rego_builtins: each name must be
// one of the builtins extra Rego is refused by default.
func extraBuiltins(r catalog.NodeReader, n *yaml.Node) []string {
	names := r.Strings(n, "extra_rego_builtins")
	if n == nil || len(names) != len(n.Content) {
		return names // absent, or item problems already reported
	}
	excluded := policy.ExcludedBuiltins()
	for i, name := range names {
		if !slices.Contains(excluded, name) {
			r.Errorf(n.Content[i], "field \"extra_rego_builtins\": %q is not one of the excluded builtins (%s)", name, strings.Join(excluded, ", "))
		}
	}
	return names
}
