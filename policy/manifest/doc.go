// Package manifest owns the service manifest: one YAML file per protected
// backend that maps its routes (method set and path pattern) to the unit
// primitives a token must hold, plus the claim↔header bindings, the seat-count
// buckets and the rate-limit classes the generated policy uses. It parses and
// validates manifests with positioned errors (file:line:col) and checks them
// against a catalog; it must not generate Rego or evaluate anything.
package manifest
