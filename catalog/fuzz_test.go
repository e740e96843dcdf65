package catalog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad feeds arbitrary bytes to every decoder: as a legacy
// access_data.yml, as a sync JSON payload, and as layout entity files. Loading
// must never panic, and must either succeed with a sealed catalog or fail with
// positioned problems.
func FuzzLoad(f *testing.F) {
	seeds := []string{
		"testdata/good/legacy.yml",
		"testdata/good/catalog.json",
		"testdata/good/layout/unit_primitives/duo_chat.yml",
		"testdata/good/layout/services/duo_chat.yml",
		"testdata/bad/json/fields.json",
		"testdata/bad/legacy/duplicate_name.yml",
		"testdata/bad/legacy/malformed_values.yml",
		"example/unit_primitives/duo_agent_platform.yml",
	}
	for _, p := range seeds {
		data, err := os.ReadFile(filepath.FromSlash(p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("{\"unit_primitives\": [[[[[[]]]]]], \"x\": 1e999}"))
	f.Add([]byte("services: &a {x: *a}\n"))
	f.Add([]byte("\xef\xbb\xbf{"))

	backend := []byte("name: ai_gateway\nproject_url: p\ngroup: g\njwt_aud: gitlab-ai-gateway\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		inputs := []struct {
			fsys fstest.MapFS
			root string
		}{
			{fstest.MapFS{"access_data.yml": {Data: data}}, "access_data.yml"},
			{fstest.MapFS{"catalog.json": {Data: data}}, "catalog.json"},
			{fstest.MapFS{
				"backend_services/ai_gateway.yml": {Data: backend},
				"backend_services/x.yml":          {Data: data},
				"unit_primitives/x.yml":           {Data: data},
				"add_ons/x.yml":                   {Data: data},
				"license_types/x.yml":             {Data: data},
				"services/x.yml":                  {Data: data},
			}, "."},
		}
		for _, in := range inputs {
			c, err := LoadFS(in.fsys, in.root, "fuzz")
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) || len(ve.Problems) == 0 {
					t.Fatalf("%s: error without problems: %v", in.root, err)
				}
				for _, p := range ve.Problems {
					if p.Pos.File == "" || p.Msg == "" {
						t.Fatalf("%s: unpositioned problem %+v", in.root, p)
					}
				}
				continue
			}
			if c.Digest() == "" {
				t.Fatalf("%s: catalog not sealed", in.root)
			}
			// The queries must hold on whatever loaded.
			g := c.Grant(sortedKeys(c.AddOns), time.Now())
			for _, s := range g.Scopes {
				if _, ok := c.Lookup(s); !ok {
					t.Fatalf("%s: granted unknown scope %q", in.root, s)
				}
				_ = c.Audiences(s)
			}
			for name := range c.BackendServices {
				_ = c.UnitPrimitivesOfBackend(name)
			}
			_ = c.Deprecated()
		}
	})
}
