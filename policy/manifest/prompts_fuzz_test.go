package manifest

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ccauthz/ccauthz/catalog"
)

// FuzzPromptRegistry loads a prompt registry holding one well-formed
// definition and one arbitrary file at an arbitrary path. Loading must not
// panic; every problem names a file; every prompt loaded has an id and at
// least one unit primitive, and the well-formed one is always among them.
func FuzzPromptRegistry(f *testing.F) {
	f.Add("chat/explain_code/claude/1.0.0.yml", []byte("name: x\nunit_primitives: [duo_chat]\n"))
	f.Add("code_suggestions/generations/base/1.1.0-dev.yml", []byte("unit_primitive: generate_code\n"))
	f.Add("a/b/1.0.0.yaml", []byte("unit_primitives: []\n"))
	f.Add("a/b/1.0.0.yml", []byte("unit_primitive: x\nunit_primitives: [y]\n"))
	f.Add("a/b/c.yml", []byte("- 1\n"))
	f.Add("README.md", []byte("# prompts\n"))
	f.Add("a b/m/1.0.0.yml", []byte("unit_primitives: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		fsys := fstest.MapFS{"known/base/1.0.0.yml": {Data: []byte("unit_primitives: [duo_chat]\n")}}
		if fsys[name] == nil && fstestPathOK(name) {
			fsys[name] = &fstest.MapFile{Data: data}
		}
		var ps catalog.Problems
		prompts := loadRegistry(&ps, fsys, "prompts", catalog.Position{File: "m.yaml", Line: 1, Col: 1})
		known := false
		for _, p := range prompts {
			if p.ID == "" || len(p.UnitPrimitives) == 0 {
				t.Fatalf("prompt without an id or unit primitives: %+v", p)
			}
			known = known || p.ID == "known"
		}
		if !known {
			t.Fatalf("the well-formed definition was lost: %+v", prompts)
		}
		if err := ps.Err(); err != nil {
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("problems are not a ValidationError: %v", err)
			}
			for _, p := range ve.Problems {
				if p.Pos.File == "" {
					t.Fatalf("problem without a file: %+v", p)
				}
			}
		}
	})
}

// fstestPathOK reports whether name is a path fstest.MapFS can hold next to
// the fixed definition (valid, and not a directory of it or under a file).
func fstestPathOK(name string) bool {
	if name == "" || name == "." || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") ||
		strings.Contains(name, "//") || strings.HasPrefix("known/base/1.0.0.yml", name+"/") || strings.HasPrefix(name, "known/base/1.0.0.yml/") {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// FuzzParseSelector parses arbitrary body selectors. It must not panic; an
// accepted selector has between 1 and 16 steps, starts with a field, keeps
// its text, and parses again to the same steps; a rejection names the
// selector.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"model", "payload.prompt_id", "messages[*].content", "a[0][1].b", "a[99999]", "a[1000000]", "a..b", "a[", "[0]", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		sel, err := ParseSelector(p)
		if err != nil {
			if !strings.Contains(err.Error(), "selector") {
				t.Fatalf("rejection does not say it is about a selector: %v", err)
			}
			return
		}
		if sel.Path != p || len(sel.Steps) == 0 || len(sel.Steps) > 16 || sel.Steps[0].Field == "" {
			t.Fatalf("accepted %q as %+v", p, sel)
		}
		again, err := ParseSelector(p)
		if err != nil || len(again.Steps) != len(sel.Steps) {
			t.Fatalf("reparse of %q: %+v %v", p, again, err)
		}
		for i := range sel.Steps {
			if again.Steps[i] != sel.Steps[i] {
				t.Fatalf("reparse of %q differs at step %d", p, i)
			}
		}
	})
}
