package catalog

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// diffPair loads two small layouts that differ in every way Compare reports.
func diffPair(t *testing.T) (old, new *Catalog) {
	t.Helper()
	base := func() fstest.MapFS {
		return fstest.MapFS{
			"backend_services/ai_gateway.yml": {Data: []byte("name: ai_gateway\nproject_url: p\ngroup: g\njwt_aud: gitlab-ai-gateway\n")},
			"add_ons/duo_pro.yml":             {Data: []byte("name: duo_pro\n")},
			"unit_primitives/same_up.yml":     {Data: []byte("name: same_up\ndescription: d\ngroup: g\nfeature_category: f\ndocumentation_url: u\nbackend_services: [ai_gateway]\n")},
		}
	}
	up := func(name, extra string) *fstest.MapFile {
		group := "g"
		if name == "moved_up" && strings.Contains(extra, "duo_ent") {
			group = "g2"
		}
		return &fstest.MapFile{Data: []byte("name: " + name + "\ndescription: d\ngroup: " + group + "\nfeature_category: f\ndocumentation_url: u\nbackend_services: [ai_gateway]\n" + extra)}
	}
	o := base()
	o["unit_primitives/gone_up.yml"] = up("gone_up", "")
	o["unit_primitives/old_name.yml"] = up("old_name", "")
	o["unit_primitives/moved_up.yml"] = up("moved_up", "cut_off_date: 2025-01-01\nadd_ons: [duo_pro]\n")
	o["unit_primitives/lifted_up.yml"] = up("lifted_up", "cut_off_date: 2025-01-01\nadd_ons: [duo_pro]\n")
	o["backend_services/workflow.yml"] = &fstest.MapFile{Data: []byte("name: workflow\nproject_url: p\ngroup: g\njwt_aud: old-aud\n")}
	n := base()
	n["unit_primitives/new_up.yml"] = up("new_up", "")
	n["unit_primitives/new_name.yml"] = up("new_name", "alias_names: [old_name]\n")
	n["unit_primitives/moved_up.yml"] = up("moved_up", "cut_off_date: 2024-06-01\nadd_ons: [duo_pro, duo_ent]\n")
	n["unit_primitives/lifted_up.yml"] = up("lifted_up", "add_ons: [duo_pro]\n")
	n["add_ons/duo_ent.yml"] = &fstest.MapFile{Data: []byte("name: duo_ent\n")}
	n["backend_services/workflow.yml"] = &fstest.MapFile{Data: []byte("name: workflow\nproject_url: p\ngroup: g\njwt_aud: new-aud\n")}
	var err error
	if old, err = LoadFS(o, ".", "old"); err != nil {
		t.Fatal(err)
	}
	if new, err = LoadFS(n, ".", "new"); err != nil {
		t.Fatal(err)
	}
	return old, new
}

func TestCompare(t *testing.T) {
	old, new := diffPair(t)
	d := Compare(old, new)
	if d.Empty() {
		t.Fatal("Empty() = true for different catalogs")
	}
	if want := []string{"new_up"}; !reflect.DeepEqual(d.Added, want) {
		t.Errorf("Added = %v, want %v", d.Added, want)
	}
	if want := []string{"gone_up"}; !reflect.DeepEqual(d.Removed, want) {
		t.Errorf("Removed = %v, want %v", d.Removed, want)
	}
	var names []string
	for _, c := range d.Changed {
		names = append(names, c.Name)
	}
	if want := []string{"lifted_up", "moved_up", "new_name"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("Changed = %v, want %v", names, want)
	}
	if c := d.Changed[2]; c.RenamedFrom != "old_name" {
		t.Errorf("new_name: RenamedFrom = %q, want old_name", c.RenamedFrom)
	}
	wantMoved := []FieldChange{
		{Field: "group", Old: "g", New: "g2"},
		{Field: "cut_off_date", Old: "2025-01-01T00:00:00Z", New: "2024-06-01T00:00:00Z"},
		{Field: "add_ons", Added: []string{"duo_ent"}},
	}
	if got := d.Changed[1].Fields; !reflect.DeepEqual(got, wantMoved) {
		t.Errorf("moved_up fields = %+v, want %+v", got, wantMoved)
	}
	if len(d.CutOffMoves) != 2 || d.CutOffMoves[0].Kind() != "lifted" || d.CutOffMoves[1].Kind() != "earlier" {
		t.Errorf("CutOffMoves = %+v, want lifted_up lifted and moved_up earlier", d.CutOffMoves)
	}
	if want := (SetDiff{Added: []string{"duo_ent"}, Removed: []string{}}); !reflect.DeepEqual(d.AddOns, want) {
		t.Errorf("AddOns = %+v, want %+v", d.AddOns, want)
	}
	if want := []AudienceMove{{Backend: "workflow", Old: "old-aud", New: "new-aud"}}; !reflect.DeepEqual(d.Audiences, want) {
		t.Errorf("Audiences = %+v, want %+v", d.Audiences, want)
	}
	// Backwards, the alias does not name the old unit primitive: a plain
	// removal and addition.
	back := Compare(new, old)
	if want := []string{"gone_up", "old_name"}; !reflect.DeepEqual(back.Added, want) {
		t.Errorf("reverse diff Added = %v, want %v", back.Added, want)
	}
	if want := []string{"new_name", "new_up"}; !reflect.DeepEqual(back.Removed, want) {
		t.Errorf("reverse diff Removed = %v, want %v", back.Removed, want)
	}
}

func TestCompareSame(t *testing.T) {
	d := Compare(Example(), Example())
	if !d.Empty() || d.String() != "no differences" {
		t.Errorf("example vs itself: %+v", d)
	}
}

func TestCutOffMoveKind(t *testing.T) {
	a, _ := ParseDate("2025-01-01")
	b, _ := ParseDate("2026-01-01")
	for _, tc := range []struct {
		m    CutOffMove
		want string
	}{
		{CutOffMove{New: &a}, "set"},
		{CutOffMove{Old: &a}, "lifted"},
		{CutOffMove{Old: &b, New: &a}, "earlier"},
		{CutOffMove{Old: &a, New: &b}, "later"},
	} {
		if got := tc.m.Kind(); got != tc.want {
			t.Errorf("Kind(%v→%v) = %q, want %q", tc.m.Old, tc.m.New, got, tc.want)
		}
	}
}

// TestCompareRealHistory compares the two stored versions of GitLab's legacy
// catalog: code_suggestions was split into complete_code and generate_code
// in between.
func TestCompareRealHistory(t *testing.T) {
	if _, err := os.Stat(realHistoryPath); err != nil {
		t.Skipf("reference catalog not present (%v)", err)
	}
	old, err := Load(realHistoryPath)
	if err != nil {
		t.Fatal(err)
	}
	new, err := Load(realLegacyPath)
	if err != nil {
		t.Fatal(err)
	}
	d := Compare(old, new)
	for _, want := range []string{"complete_code", "generate_code"} {
		if !containsString(d.Added, want) {
			t.Errorf("Added %v lacks %s", d.Added, want)
		}
	}
	if !containsString(d.Removed, "code_suggestions") {
		t.Errorf("Removed %v lacks code_suggestions", d.Removed)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
