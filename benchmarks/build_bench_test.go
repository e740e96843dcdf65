package benchmarks

import (
	"os"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// legacyCatalog is the real GitLab legacy catalog, read in place from the
// shared folder next to the repository (never copied into it).
const legacyCatalog = "../../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"

// BenchmarkCatalogLoadExample loads and validates the bundled example catalog
// (gitlab-cloud-connector layout, one file per entity).
func BenchmarkCatalogLoadExample(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := catalog.LoadFS(catalog.ExampleFS(), ".", "example"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCatalogLoadLegacy loads and normalises the real access_data.yml.
func BenchmarkCatalogLoadLegacy(b *testing.B) {
	if _, err := os.Stat(legacyCatalog); err != nil {
		b.Skipf("the reference catalog is not at %s: %v", legacyCatalog, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := catalog.Load(legacyCatalog); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyBuild generates, compiles and prepares the AI gateway
// policy: the cost of a start or a reload per backend.
func BenchmarkPolicyBuild(b *testing.B) {
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		b.Fatal(err)
	}
	cat := catalog.Example()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Build(cat, m, policy.BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
