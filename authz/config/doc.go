// Package config is the `ccauthz serve` configuration: one YAML file decoded
// through catalog.NodeReader so that every problem is reported as
// file:line:col: message (all of them, sorted), then defaulted and validated.
// It owns the typed Config and its defaults; it does not load catalogs,
// manifests or keys (the server assembly does, from the paths given here).
package config
