package catalog

import (
	"slices"
	"testing"
	"testing/fstest"
	"time"
)

// queryCatalog is a small layout whose every query answer is known by heart:
//
//	free_up       no cut-off, no add-on            ai_gateway
//	paid_up       cut-off 2025-01-01, duo_pro       ai_gateway
//	both_up       cut-off 2025-06-01, duo_ent       ai_gateway + workflow
//	future_up     cut-off 2030-01-01, duo_ent       workflow
//	old_up        deprecated, alias legacy_up, free workflow
func queryCatalog(t *testing.T) *Catalog {
	t.Helper()
	up := func(name, extra string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("name: " + name + "\ndescription: d\ngroup: g\nfeature_category: f\ndocumentation_url: u\n" + extra)}
	}
	fsys := fstest.MapFS{
		"backend_services/ai_gateway.yml": {Data: []byte("name: ai_gateway\nproject_url: p\ngroup: g\njwt_aud: gitlab-ai-gateway\n")},
		"backend_services/workflow.yml":   {Data: []byte("name: workflow\nproject_url: p\ngroup: g\njwt_aud: gitlab-duo-workflow-service\n")},
		"add_ons/duo_pro.yml":             {Data: []byte("name: duo_pro\n")},
		"add_ons/duo_ent.yml":             {Data: []byte("name: duo_ent\n")},
		"add_ons/unused.yml":              {Data: []byte("name: unused\n")},
		"unit_primitives/free_up.yml":     up("free_up", "backend_services: [ai_gateway]\n"),
		"unit_primitives/paid_up.yml": up("paid_up", "cut_off_date: 2025-01-01T00:00:00+00:00\n"+
			"backend_services: [ai_gateway]\nadd_ons: [duo_pro]\n"),
		"unit_primitives/both_up.yml": up("both_up", "cut_off_date: 2025-06-01 00:00:00 UTC\n"+
			"backend_services: [workflow, ai_gateway]\nadd_ons: [duo_ent]\n"),
		"unit_primitives/future_up.yml": up("future_up", "cut_off_date: 2030-01-01\nbackend_services: [workflow]\nadd_ons: [duo_ent]\n"),
		"unit_primitives/old_up.yml": up("old_up", "deprecation_message: use both_up\nalias_names: [legacy_up]\n"+
			"backend_services: [workflow]\n"),
	}
	c, err := LoadFS(fsys, ".", "q")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func upNames(ups []*UnitPrimitive) []string {
	out := []string{}
	for _, u := range ups {
		out = append(out, u.Name)
	}
	return out
}

func TestLookup(t *testing.T) {
	c := queryCatalog(t)
	cases := []struct{ in, want string }{
		{"paid_up", "paid_up"}, {"legacy_up", "old_up"}, {"old_up", "old_up"}, {"nope", ""},
	}
	for _, tc := range cases {
		u, ok := c.Lookup(tc.in)
		if got := ""; ok {
			got = u.Name
			if got != tc.want {
				t.Errorf("Lookup(%q) = %s, want %s", tc.in, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("Lookup(%q) not found, want %s", tc.in, tc.want)
		}
	}
}

func TestBackend(t *testing.T) {
	c := queryCatalog(t)
	cases := []struct{ in, want string }{
		{"workflow", "workflow"}, {"gitlab-duo-workflow-service", "workflow"}, {"gitlab-ai-gateway", "ai_gateway"}, {"nope", ""},
	}
	for _, tc := range cases {
		b, ok := c.Backend(tc.in)
		if (ok && b.Name != tc.want) || (!ok && tc.want != "") {
			t.Errorf("Backend(%q) = %v, %v; want %s", tc.in, b, ok, tc.want)
		}
	}
}

func TestUnitPrimitivesOfBackendAndAddOn(t *testing.T) {
	c := queryCatalog(t)
	backend := []struct {
		in   string
		want []string
	}{
		{"ai_gateway", []string{"both_up", "free_up", "paid_up"}},
		{"gitlab-duo-workflow-service", []string{"both_up", "future_up", "old_up"}},
		{"nope", []string{}},
	}
	for _, tc := range backend {
		if got := upNames(c.UnitPrimitivesOfBackend(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("UnitPrimitivesOfBackend(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	addOn := []struct {
		in   string
		want []string
	}{
		{"duo_pro", []string{"paid_up"}},
		{"duo_ent", []string{"both_up", "future_up"}},
		{"unused", []string{}},
		{"nope", []string{}},
	}
	for _, tc := range addOn {
		if got := upNames(c.UnitPrimitivesOfAddOn(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("UnitPrimitivesOfAddOn(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestAudiences(t *testing.T) {
	c := queryCatalog(t)
	cases := []struct {
		in   string
		want []string
	}{
		{"free_up", []string{"gitlab-ai-gateway"}},
		{"both_up", []string{"gitlab-ai-gateway", "gitlab-duo-workflow-service"}},
		{"legacy_up", []string{"gitlab-duo-workflow-service"}}, // by alias
		{"nope", nil},
	}
	for _, tc := range cases {
		if got := c.Audiences(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Audiences(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFreeAt(t *testing.T) {
	c := queryCatalog(t)
	cut := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		up   string
		at   time.Time
		want bool
	}{
		{"free_up", cut.AddDate(50, 0, 0), true},
		{"paid_up", cut.Add(-time.Nanosecond), true},
		// GitLab: free while cut_off_date.future?, so not at the instant itself.
		{"paid_up", cut, false},
		{"paid_up", cut.Add(time.Hour), false},
		// The same instant in another zone.
		{"paid_up", cut.In(time.FixedZone("x", 3600)).Add(-time.Second), true},
	}
	for _, tc := range cases {
		if got := c.UnitPrimitives[tc.up].FreeAt(tc.at); got != tc.want {
			t.Errorf("%s.FreeAt(%s) = %v", tc.up, tc.at, got)
		}
	}
}

func TestGrant(t *testing.T) {
	c := queryCatalog(t)
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ai, wf := "gitlab-ai-gateway", "gitlab-duo-workflow-service"
	cases := []struct {
		name      string
		addOns    []string
		at        time.Time
		scopes    []string
		audiences []string
	}{
		{"before every cut-off everything is free", nil, at("2024-12-31T23:59:59Z"),
			[]string{"both_up", "free_up", "future_up", "old_up", "paid_up"}, []string{ai, wf}},
		{"no add-ons after a cut-off: only free ones", nil, at("2025-03-01T00:00:00Z"),
			[]string{"both_up", "free_up", "future_up", "old_up"}, []string{ai, wf}},
		{"no add-ons after two cut-offs", []string{}, at("2025-07-01T00:00:00Z"),
			[]string{"free_up", "future_up", "old_up"}, []string{ai, wf}},
		{"duo_pro after the cut-offs", []string{"duo_pro"}, at("2025-07-01T00:00:00Z"),
			[]string{"free_up", "future_up", "old_up", "paid_up"}, []string{ai, wf}},
		{"at least one of the add-ons", []string{"unknown", "duo_ent"}, at("2031-01-01T00:00:00Z"),
			[]string{"both_up", "free_up", "future_up", "old_up"}, []string{ai, wf}},
		{"unknown add-ons grant nothing more", []string{"duo_enterprise"}, at("2031-01-01T00:00:00Z"),
			[]string{"free_up", "old_up"}, []string{ai, wf}},
	}
	for _, tc := range cases {
		g := c.Grant(tc.addOns, tc.at)
		if !slices.Equal(g.Scopes, tc.scopes) || !slices.Equal(g.Audiences, tc.audiences) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, g.Scopes, g.Audiences, tc.scopes, tc.audiences)
		}
	}
	// Empty grants are empty lists, not null, in JSON.
	empty := New(ShapeLayout, "x")
	empty.Seal()
	if g := empty.Grant(nil, time.Now()); g.Scopes == nil || g.Audiences == nil {
		t.Errorf("empty grant: %#v", g)
	}
}

func TestDeprecatedAndDigest(t *testing.T) {
	c := queryCatalog(t)
	if got := upNames(c.Deprecated()); !slices.Equal(got, []string{"old_up"}) {
		t.Errorf("Deprecated() = %v", got)
	}
	d := queryCatalog(t)
	if c.Digest() != d.Digest() || len(c.Digest()) != 64 {
		t.Errorf("digest not stable: %s %s", c.Digest(), d.Digest())
	}
	d.UnitPrimitives["free_up"].AddOns = []string{"duo_pro"}
	d.Seal()
	if c.Digest() == d.Digest() {
		t.Error("digest did not change with the content")
	}
}

// Example-level answers that the rest of ccauthz (and the README) rely on.
func TestExampleQueries(t *testing.T) {
	c := Example()
	if got := upNames(c.UnitPrimitivesOfBackend("gitlab-security-gateway")); !slices.Equal(got, []string{"security_scans"}) {
		t.Errorf("security gateway: %v", got)
	}
	if got := upNames(c.UnitPrimitivesOfAddOn("duo_core")); !slices.Equal(got,
		[]string{"ai_gateway_model_provider_proxy", "duo_agent_platform", "duo_classic_chat"}) {
		t.Errorf("duo_core: %v", got)
	}
	if got := c.UnitPrimitivesOfAddOn("duo_amazon_q"); len(got) != 0 {
		t.Errorf("duo_amazon_q bundles %v", upNames(got))
	}
	if u, ok := c.Lookup("code_suggestions"); !ok || u.Name != "complete_code" {
		t.Errorf("code_suggestions alias: %v", u)
	}
	if got := upNames(c.Deprecated()); !slices.Equal(got,
		[]string{"duo_workflow_execute_workflow", "fill_in_merge_request_template", "summarize_submitted_review"}) {
		t.Errorf("deprecated: %v", got)
	}
}
