package token

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

// DecodeUnverified splits a compact JWT and decodes its header and claims
// WITHOUT verifying anything: for `ccauthz token inspect` only, never for an
// access decision.
func DecodeUnverified(tok string) (header, claims map[string]any, err error) {
	c, err := parseCompact(tok)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(c.rawHeader, &header); err != nil {
		return nil, nil, fmt.Errorf("token header: %w", err)
	}
	return header, c.payload, nil
}

// ReadIssuersFile reads the `issuers` list of a YAML configuration file (the
// server configuration; other top-level keys are left to their owners) and
// validates it. A relative jwks_file is taken relative to the file's
// directory, as the server does. Problems are returned as a *catalog.ValidationError whose
// lines read file:line:col: message.
func ReadIssuersFile(path string) ([]IssuerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read issuer configuration: %w", err)
	}
	var ps catalog.Problems
	r := catalog.NodeReader{File: path, Problems: &ps}
	root := r.Parse(data)
	if root == nil {
		return nil, ps.Err()
	}
	if root.Kind != yaml.MappingNode {
		r.Errorf(root, "configuration must be a mapping with an issuers list")
		return nil, ps.Err()
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "issuers" {
			list = root.Content[i+1]
		}
	}
	if list == nil {
		r.Errorf(root, "missing required field %q", "issuers")
		return nil, ps.Err()
	}
	out := DecodeIssuers(r, list)
	if err := ps.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if f := out[i].JWKSFile; f != "" && !filepath.IsAbs(f) {
			out[i].JWKSFile = filepath.Join(filepath.Dir(path), f)
		}
	}
	return out, nil
}
