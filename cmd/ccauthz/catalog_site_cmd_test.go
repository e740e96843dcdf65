package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
)

// changedExample writes the example catalog into a temporary directory with
// explain_code removed (also from the services listing it) and
// complete_code's cut-off moved a year later; it returns the directory.
func changedExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, catalog.ExampleFS()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "unit_primitives", "explain_code.yml")); err != nil {
		t.Fatal(err)
	}
	services, err := filepath.Glob(filepath.Join(dir, "services", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(p, old, new string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), old, new)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range services {
		edit(p, "  - explain_code\n", "")
	}
	edit(filepath.Join(dir, "unit_primitives", "complete_code.yml"), "cut_off_date: 2024-10-17", "cut_off_date: 2025-10-17")
	return dir
}

func TestCatalogDiff(t *testing.T) {
	changed := changedExample(t)

	code, out, errOut := runCLI(t, "catalog", "diff", "embedded:example", changed)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"removed unit primitives (1):\n  - explain_code\n",
		"  ~ complete_code\n      cut_off_date: 2024-10-17T00:00:00Z → 2025-10-17T00:00:00Z\n",
		"cut-off moves (1):\n  complete_code: 2024-10-17T00:00:00Z → 2025-10-17T00:00:00Z (later)\n",
		"service duo_chat: -explain_code\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runCLI(t, "catalog", "diff", "embedded:example", changed, "--exit-code"); code != exitDiffers {
		t.Errorf("--exit-code on different catalogs: exit %d, want %d", code, exitDiffers)
	}

	code, out, _ = runCLI(t, "catalog", "diff", changed, "embedded:example", "--format", "json")
	var d catalog.Diff
	if err := json.Unmarshal([]byte(out), &d); code != exitOK || err != nil {
		t.Fatalf("json: exit %d, %v:\n%s", code, err, out)
	}
	if len(d.Added) != 1 || d.Added[0] != "explain_code" || len(d.CutOffMoves) != 1 || d.CutOffMoves[0].Kind() != "earlier" {
		t.Errorf("json diff backwards: added %v, cut-off moves %+v", d.Added, d.CutOffMoves)
	}

	code, out, _ = runCLI(t, "catalog", "diff", "embedded:example", "embedded:example", "--exit-code")
	if code != exitOK || !strings.HasSuffix(out, "no differences\n") {
		t.Errorf("same catalogs: exit %d:\n%s", code, out)
	}
}

func TestCatalogDiffErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"embedded:example"}, exitUsage, "want OLD and NEW catalogs, got 1 arguments"},
		{[]string{"embedded:example", "embedded:example", "--format", "xml"}, exitUsage, "--format must be text or json"},
		{[]string{"embedded:example", "no/such/catalog.yml"}, exitInvalid, "the new catalog no/such/catalog.yml is invalid"},
		{[]string{"embedded:nope", "embedded:example"}, exitInvalid, `unknown embedded catalog "nope"`},
	} {
		code, _, errOut := runCLI(t, append([]string{"catalog", "diff"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("diff %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}

func TestCatalogDiffRealHistory(t *testing.T) {
	needReal(t, realHistory)
	code, out, _ := runCLI(t, "catalog", "diff", realHistory, realLegacyFile, "--exit-code")
	if code != exitDiffers {
		t.Errorf("exit %d, want %d", code, exitDiffers)
	}
	for _, want := range []string{"  + complete_code\n", "  + generate_code\n", "  - code_suggestions\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff of the real history lacks %q", want)
		}
	}
}

func TestCatalogSite(t *testing.T) {
	out := filepath.Join(t.TempDir(), "site")
	old := changedExample(t)
	code, stdout, errOut := runCLI(t, "catalog", "site", "--manifest", "embedded:ai_gateway", "--manifest", "embedded:duo_workflow",
		"--old", old, "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "52 unit primitives, 4 add-ons, 4 backends") {
		t.Errorf("stdout: %s", stdout)
	}
	for file, want := range map[string]string{
		"index.html":                        `href="up/complete_code.html"`,
		"up/complete_code.html":             `data-route="ai_gateway/code_completions_v2"`,
		"backend/duo_workflow_service.html": `<tr id="route-`,
		"diff.html":                         `<a href="up/explain_code.html">explain_code</a>`,
		"grant.html":                        `<script type="application/json" id="grant-data">[{"name":`,
		"assets/site.css":                   "--fg",
	} {
		b, err := os.ReadFile(filepath.Join(out, file))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}

// TestCatalogSiteDefault: without --catalog, the bundled catalog comes with
// the bundled manifests, so its pages list routes.
func TestCatalogSiteDefault(t *testing.T) {
	out := t.TempDir()
	if code, _, errOut := runCLI(t, "catalog", "site", "--out", out); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b, err := os.ReadFile(filepath.Join(out, "up", "duo_workflow_execute_workflow.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `data-route="duo_workflow_service/`) {
		t.Errorf("duo_workflow_execute_workflow page lists no duo_workflow route")
	}
}

func TestCatalogSiteErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("backend: ai_gateway\nroutes:\n  - {id: r, methods: [GET], path: /x, unit_primitives: [no_such_up]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "--out is required"},
		{[]string{"--out", dir, "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"--out", dir, "--at", "yesterday"}, exitUsage, "--at:"},
		{[]string{"--out", dir, "--manifest", "embedded:nope"}, exitInvalid, "unknown example manifest"},
		{[]string{"--out", dir, "--manifest", bad}, exitInvalid, `bad.yaml:3:`},
		{[]string{"--out", dir, "--catalog", filepath.Join(dir, "missing")}, exitInvalid, "missing"},
	} {
		code, _, errOut := runCLI(t, append([]string{"catalog", "site"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("site %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
}
