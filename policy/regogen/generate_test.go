package regogen

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func generateExample(t *testing.T, cat *catalog.Catalog, name string) *Output {
	t.Helper()
	m, err := manifest.Example(name)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := m.Bind(cat)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Generate(cat, bound)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGolden compares the generated files for every example manifest (with
// the example catalog) to testdata/<manifest>/. Run `go test ./policy/regogen
// -update` after an intended change and review the diff.
func TestGolden(t *testing.T) {
	cat := catalog.Example()
	for _, name := range manifest.ExampleNames() {
		t.Run(name, func(t *testing.T) {
			out := generateExample(t, cat, name)
			dir := filepath.Join("testdata", name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				for _, f := range out.Files() {
					p := filepath.Join(dir, filepath.FromSlash(f.Name))
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			want := map[string]bool{}
			for _, f := range out.Files() {
				want[f.Name] = true
				got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
				if err != nil {
					t.Errorf("%s: missing golden file (run go test ./policy/regogen -update): %v", f.Name, err)
					continue
				}
				if string(got) != f.Content {
					t.Errorf("%s/%s is stale: the generator output changed (run go test ./policy/regogen -update and review the diff)", dir, f.Name)
				}
			}
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				if !want[filepath.ToSlash(rel)] {
					t.Errorf("%s: golden file no longer generated (run -update)", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDeterministicAndStamped(t *testing.T) {
	a := generateExample(t, catalog.Example(), "ai_gateway")
	b := generateExample(t, catalog.Example(), "ai_gateway")
	if a.Module != b.Module || len(a.Tests) != len(b.Tests) {
		t.Fatal("two runs differ")
	}
	for k, v := range a.Tests {
		if b.Tests[k] != v {
			t.Fatalf("%s differs between runs", k)
		}
	}
	stampLine := "# Inputs: sha256:" + a.InputHash
	if !strings.Contains(a.Module, "regogen v"+Version) || !strings.Contains(a.Module, stampLine) {
		t.Error("module is not stamped with generator version and input hash")
	}
	for name, src := range a.Tests {
		if !strings.Contains(src, stampLine) {
			t.Errorf("%s not stamped", name)
		}
	}
}

func TestInputHashFollowsInputs(t *testing.T) {
	cat := catalog.Example()
	src := `backend: ai_gateway
routes:
  - {id: a, methods: [POST], path: /a, unit_primitives: [duo_chat]}
`
	m1, err := manifest.Parse("m.yaml", []byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	// Comments and layout do not change the hash; content does.
	m2, _ := manifest.Parse("other.yaml", []byte("# comment\n"+src), cat)
	m3, _ := manifest.Parse("m.yaml", []byte(strings.Replace(src, "duo_chat", "complete_code", 1)), cat)
	if InputHash(cat, m1) != InputHash(cat, m2) {
		t.Error("a comment changed the input hash")
	}
	if InputHash(cat, m1) == InputHash(cat, m3) {
		t.Error("a different unit primitive kept the input hash")
	}
}

func TestGenerateRequiresBoundManifest(t *testing.T) {
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(catalog.Example(), m); err != ErrNotBound {
		t.Fatalf("got %v, want ErrNotBound", err)
	}
}

// TestEveryRouteHasItsProofs checks the generated suite covers each route
// with the allow case and every denial the issue asks for.
func TestEveryRouteHasItsProofs(t *testing.T) {
	cat := catalog.Example()
	m, _ := manifest.Example("ai_gateway")
	bound, _ := m.Bind(cat)
	out := generateExample(t, cat, "ai_gateway")
	names := map[string]map[string]bool{}
	for _, c := range out.Cases {
		if names[c.Route] == nil {
			names[c.Route] = map[string]bool{}
		}
		names[c.Route][c.Name] = true
	}
	for _, r := range bound.Routes {
		want := []string{"allowed", "denied_without_unit_primitive", "denied_foreign_audience", "denied_header_mismatch"}
		switch {
		case r.Public:
			want = []string{"allowed_without_token"}
		case r.NotFound:
			want = []string{"denied_not_found", "denied_missing_authorization"}
		case r.AuthenticateOnly:
			want = []string{"allowed", "denied_foreign_audience", "denied_header_mismatch"}
		}
		for _, up := range r.AnyOf[min(1, len(r.AnyOf)):] {
			want = append(want, "allowed_with_any_of_"+up)
		}
		if r.Prompt {
			want = append(want, "denied_unknown_prompt", "allowed_prompt_chat_explain_code", "denied_prompt_review_merge_request_without_include_merge_request_context")
		}
		if r.HasBody() {
			want = append(want, "denied_body_absent", "denied_body_too_large", "denied_body_truncated", "denied_body_not_json", "denied_body_not_an_object", "denied_body_wrong_type")
		}
		if len(r.RefuseHeaders) > 0 {
			want = append(want, "refused_header_0")
		}
		if len(r.DisallowedIssuers) > 0 {
			want = append(want, "denied_disallowed_issuer")
		}
		if r.HeaderUP != nil {
			want = append(want, "denied_missing_unit_primitive_header", "denied_unknown_unit_primitive_header", "denied_unit_primitive_not_allowed", "denied_scope_before_feature_map")
		}
		for _, w := range want {
			if !names[r.ID][w] {
				t.Errorf("route %s has no %s test", r.ID, w)
			}
		}
		if _, ok := out.Tests[r.ID+"_test.rego"]; !ok {
			t.Errorf("route %s has no test file", r.ID)
		}
	}
}
