package catalog

import (
	"os"
	"slices"
	"testing"
)

// The real GitLab catalogs live next to the repository in ../shared (read in
// place, never copied). Tests that need them skip when they are absent.
const (
	realLegacyPath  = "../../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"
	realHistoryPath = "../../shared/reference-catalog/history/access_data.037b30a2b4caeeaa65b1655b623df432b07bae32.yml"
)

func loadReal(t *testing.T, p string) *Catalog {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real GitLab catalog not available (%v): it is read from ../shared next to the repository", err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatalf("the real catalog must load:\n%v", err)
	}
	return c
}

func TestRealReferenceCatalogsLoad(t *testing.T) {
	final := loadReal(t, realLegacyPath)
	if final.Shape != ShapeLegacy || len(final.Services) != 26 {
		t.Errorf("final legacy file: shape %s, %d services; want legacy, 26", final.Shape, len(final.Services))
	}
	history := loadReal(t, realHistoryPath)
	if len(history.Services) != 21 {
		t.Errorf("history file: %d services, want 21", len(history.Services))
	}
	// The older file still bundled observability_all with the (since removed)
	// observability add-on, and had the undivided code_suggestions.
	if u := history.UnitPrimitives["observability_all"]; u == nil || !slices.Equal(u.AddOns, []string{"observability"}) {
		t.Errorf("history observability_all: %+v", u)
	}
	if _, ok := history.UnitPrimitives["code_suggestions"]; !ok {
		t.Error("history: code_suggestions missing")
	}
}

func TestExampleLoads(t *testing.T) {
	c := Example()
	if c.Shape != ShapeLayout || c.Source != ExampleLabel {
		t.Fatalf("shape %s source %q", c.Shape, c.Source)
	}
	// Each call is independent: callers may not share mutable maps by accident.
	if d := Example(); d == c || d.Digest() != c.Digest() {
		t.Error("Example must return a fresh catalog with the same content")
	}
	backends := map[string]string{
		"ai_gateway":            "gitlab-ai-gateway",
		"duo_workflow_service":  "gitlab-duo-workflow-service",
		"observability_backend": "gitlab-observability-backend",
		"security_gateway":      "gitlab-security-gateway",
	}
	for name, aud := range backends {
		if b := c.BackendServices[name]; b == nil || b.JWTAud != aud {
			t.Errorf("backend %s: %+v", name, b)
		}
	}
	if got := sortedKeys(c.AddOns); !slices.Equal(got, []string{"duo_amazon_q", "duo_core", "duo_enterprise", "duo_pro"}) {
		t.Errorf("add-ons %v", got)
	}
	if got := sortedKeys(c.LicenseTypes); !slices.Equal(got, []string{"premium", "ultimate"}) {
		t.Errorf("license types %v", got)
	}
	for _, name := range []string{
		"ai_gateway_model_provider_proxy", "ask_work_item", "duo_agent_platform", "duo_classic_chat",
		"feature_discovery_search", "include_terminal_context", "include_repository_context",
		"self_hosted_models", "self_hosted_duo_agent_platform", "description_composer",
		"generate_embeddings_codebase", "measure_comment_temperature", "summarize_new_merge_request",
	} {
		if _, ok := c.UnitPrimitives[name]; !ok {
			t.Errorf("newer unit primitive %s missing", name)
		}
	}
	deprecatedWithAlias := false
	for _, u := range c.Deprecated() {
		deprecatedWithAlias = deprecatedWithAlias || len(u.AliasNames) > 0
	}
	if !deprecatedWithAlias {
		t.Error("the example needs a deprecated unit primitive with alias_names")
	}
	for _, u := range c.UnitPrimitives {
		if u.Description == "" || u.Group == "" || u.FeatureCategory == "" || u.DocumentationURL == "" {
			t.Errorf("%s: documentation fields missing", u.Name)
		}
	}
}

// For every unit primitive of the real legacy file, the example agrees with
// it after normalisation on what decides access: audiences, add-ons, license
// types, cut-off date and minimum versions. Its services mirror the legacy
// services (the example may list more unit primitives in one, as
// gitlab-cloud-connector's duo_chat service does).
func TestExampleAgreesWithLegacy(t *testing.T) {
	legacy := loadReal(t, realLegacyPath)
	ex := Example()
	for _, name := range legacy.UnitPrimitiveNames() {
		l := legacy.UnitPrimitives[name]
		e, ok := ex.UnitPrimitives[name]
		if !ok {
			t.Errorf("%s: in the legacy file but not in the example", name)
			continue
		}
		if la, ea := legacy.Audiences(name), ex.Audiences(name); !slices.Equal(la, ea) {
			t.Errorf("%s: audiences %v, legacy %v", name, ea, la)
		}
		if !slices.Equal(e.AddOns, l.AddOns) {
			t.Errorf("%s: add-ons %v, legacy %v", name, e.AddOns, l.AddOns)
		}
		if !slices.Equal(e.LicenseTypes, l.LicenseTypes) {
			t.Errorf("%s: license types %v, legacy %v", name, e.LicenseTypes, l.LicenseTypes)
		}
		if !sameTime(e.CutOffDate, l.CutOffDate) {
			t.Errorf("%s: cut-off %s, legacy %s", name, fmtTime(e.CutOffDate), fmtTime(l.CutOffDate))
		}
		if e.MinGitLabVersion != l.MinGitLabVersion || e.MinGitLabVersionForFreeAccess != l.MinGitLabVersionForFreeAccess {
			t.Errorf("%s: versions %q/%q, legacy %q/%q", name, e.MinGitLabVersion, e.MinGitLabVersionForFreeAccess,
				l.MinGitLabVersion, l.MinGitLabVersionForFreeAccess)
		}
	}
	for _, name := range sortedKeys(legacy.Services) {
		ls, es := legacy.Services[name], ex.Services[name]
		if es == nil {
			t.Errorf("service %s: in the legacy file but not in the example", name)
			continue
		}
		for _, up := range ls.UnitPrimitives {
			if !slices.Contains(es.UnitPrimitives, up) {
				t.Errorf("service %s: the example does not list %s", name, up)
			}
		}
	}
	for name, lb := range legacy.BackendServices {
		if eb := ex.BackendServices[name]; eb == nil || eb.JWTAud != lb.JWTAud {
			t.Errorf("backend %s: example %+v, legacy %+v", name, eb, lb)
		}
	}
}
