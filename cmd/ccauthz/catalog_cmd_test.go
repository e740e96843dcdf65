package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
)

const (
	exampleDir     = "../../catalog/example"
	realLegacyFile = "../../../shared/reference-catalog/ee/config/cloud_connector/access_data.yml"
	realHistory    = "../../../shared/reference-catalog/history/access_data.037b30a2b4caeeaa65b1655b623df432b07bae32.yml"
)

// fixedNow is the clock of every CLI test.
var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// runCLI runs ccauthz in-process and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, now: func() time.Time { return fixedNow }}
	code := run(context.Background(), e, args)
	return code, stdout.String(), stderr.String()
}

func needReal(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real GitLab catalog not available (%v): it is read from ../shared next to the repository", err)
	}
}

func TestCatalogUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"catalog"}, exitUsage},
		{[]string{"catalog", "-h"}, exitOK},
		{[]string{"catalog", "frobnicate"}, exitUsage},
		{[]string{"catalog", "list", "-h"}, exitOK},
		{[]string{"catalog", "list", "--nope"}, exitUsage},
		{[]string{"catalog", "list", "extra"}, exitUsage},
		{[]string{"catalog", "list", "--format", "yaml"}, exitUsage},
		{[]string{"catalog", "validate"}, exitUsage},
		{[]string{"catalog", "validate", "a", "b"}, exitUsage},
		{[]string{"catalog", "show"}, exitUsage},
		{[]string{"catalog", "show", "duo_chat", "--at", "yesterday"}, exitUsage},
		{[]string{"catalog", "show", "no_such_up"}, exitUsage},
		{[]string{"catalog", "scopes", "--add-ons", "duo_pro,nope"}, exitUsage},
		{[]string{"catalog", "list", "--backend", "nope"}, exitUsage},
		{[]string{"catalog", "list", "--add-on", "nope"}, exitUsage},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr)
		}
		if tc.code != exitOK && (stdout != "" || stderr == "") {
			t.Errorf("%v: a failure must print to stderr only; stdout %q", tc.args, stdout)
		}
	}
	// Every name lookup suggests the closest known name, worded alike.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"catalog", "show", "duo_chats"}, "ccauthz catalog show: unknown unit primitive \"duo_chats\" (did you mean \"duo_chat\"?)\n"},
		{[]string{"catalog", "show", "xyzzy"}, "ccauthz catalog show: unknown unit primitive \"xyzzy\"\n"},
		{[]string{"catalog", "list", "--add-on", "duo_prp"}, "ccauthz catalog list: unknown add-on \"duo_prp\" (did you mean \"duo_pro\"?) (known: "},
		{[]string{"catalog", "scopes", "--add-ons", "duo_entreprise"}, "ccauthz catalog scopes: unknown add-on \"duo_entreprise\" (did you mean \"duo_enterprise\"?) (known: "},
		{[]string{"catalog", "list", "--backend", "ai_gatway"}, "ccauthz catalog list: unknown backend \"ai_gatway\" (did you mean \"ai_gateway\"?) (known: "},
	} {
		code, _, stderr := runCLI(t, tc.args...)
		if code != exitUsage || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want prefix %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestCatalogValidateValid(t *testing.T) {
	code, stdout, stderr := runCLI(t, "catalog", "validate", exampleDir)
	c := catalog.Example()
	want := exampleDir + ": valid layout catalog: 52 unit primitives, 4 backend services, 4 add-ons, 2 license types, 26 services; digest " + c.Digest() + "\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("exit %d\nstdout %q\nwant   %q\nstderr %q", code, stdout, want, stderr)
	}
	for _, p := range []string{"../../catalog/testdata/good/catalog.json", "../../catalog/testdata/good/legacy.yml", "../../catalog/testdata/good/nested"} {
		if code, _, stderr := runCLI(t, "catalog", "validate", p); code != exitOK {
			t.Errorf("%s: exit %d: %s", p, code, stderr)
		}
	}
}

func TestCatalogValidateRealFiles(t *testing.T) {
	for _, p := range []string{realLegacyFile, realHistory} {
		needReal(t, p)
		code, stdout, stderr := runCLI(t, "catalog", "validate", p)
		if code != exitOK || !strings.HasPrefix(stdout, p+": valid legacy catalog: ") || stderr != "" {
			t.Errorf("%s: exit %d, %q, %q", p, code, stdout, stderr)
		}
	}
}

// Every bad fixture is rejected with exit 1 and exactly its positioned
// problems (the catalog package's tests pin each message), then a count.
func TestCatalogValidateRejectsEveryBadFixture(t *testing.T) {
	var paths []string
	for _, pattern := range []string{"*", "legacy/*", "json/*", "neither_shape/*"} {
		m, err := filepath.Glob(filepath.Join("../../catalog/testdata/bad", pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	paths = slices.DeleteFunc(paths, func(p string) bool {
		base := filepath.Base(p)
		return base == "legacy" || base == "json" || base == "neither_shape"
	})
	if len(paths) < 30 {
		t.Fatalf("only %d fixtures found", len(paths))
	}
	for _, p := range paths {
		code, stdout, stderr := runCLI(t, "catalog", "validate", p)
		_, err := catalog.Load(p)
		var ve *catalog.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: %v", p, err)
		}
		noun := "problems"
		if len(ve.Problems) == 1 {
			noun = "problem"
		}
		want := ve.Error() + "\n" + p + ": invalid catalog: " + strconv.Itoa(len(ve.Problems)) + " " + noun + "\n"
		if code != exitInvalid || stdout != "" || stderr != want {
			t.Errorf("%s: exit %d\nstderr:\n%s\nwant:\n%s", p, code, stderr, want)
		}
	}
}

func TestCatalogList(t *testing.T) {
	code, stdout, _ := runCLI(t, "catalog", "list", "--backend", "gitlab-security-gateway")
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if code != exitOK || len(lines) != 2 || !strings.HasPrefix(lines[0], "UNIT PRIMITIVE") ||
		strings.Join(strings.Fields(lines[1]), " ") != "security_scans gitlab-security-gateway - - - - - -" {
		t.Errorf("exit %d:\n%s", code, stdout)
	}

	// Both filters combine; flags may come in any order.
	code, stdout, _ = runCLI(t, "catalog", "list", "--format", "json", "--add-on", "duo_core", "--backend", "duo_workflow_service")
	var views []struct {
		Name       string   `json:"name"`
		Audiences  []string `json:"audiences"`
		AddOns     []string `json:"add_ons"`
		CutOffDate string   `json:"cut_off_date"`
		Deprecated bool     `json:"deprecated"`
	}
	if err := json.Unmarshal([]byte(stdout), &views); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v:\n%s", code, err, stdout)
	}
	if len(views) != 1 || views[0].Name != "duo_agent_platform" ||
		!slices.Equal(views[0].Audiences, []string{"gitlab-ai-gateway", "gitlab-duo-workflow-service"}) ||
		views[0].CutOffDate != "2026-01-15T00:00:00Z" {
		t.Errorf("got %+v", views)
	}

	code, stdout, _ = runCLI(t, "catalog", "list")
	if n := strings.Count(stdout, "\n"); code != exitOK || n != 53 {
		t.Errorf("exit %d, %d lines", code, n)
	}
	if !strings.Contains(stdout, "deprecated; aliases: duo_workflow_generate_token") {
		t.Errorf("deprecation and aliases not shown:\n%s", stdout)
	}

	// An invalid --catalog prints its problems and exits 1.
	code, stdout, stderr := runCLI(t, "catalog", "list", "--catalog", "../../catalog/testdata/bad/no_backend")
	if code != exitInvalid || stdout != "" || !strings.Contains(stderr, "has no backend_services") {
		t.Errorf("exit %d, %q, %q", code, stdout, stderr)
	}
}

func TestCatalogShow(t *testing.T) {
	// Flags after the name; looked up by alias; free before the cut-off.
	code, stdout, stderr := runCLI(t, "catalog", "show", "code_suggestions", "--at", "2024-06-01")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"unit primitive:                complete_code\n",
		"looked up as:                  code_suggestions (an alias)\n",
		"backend services:              ai_gateway (gitlab-ai-gateway)\n",
		"audiences:                     gitlab-ai-gateway\n",
		"add-ons:                       duo_enterprise, duo_pro\n",
		"license types:                 -\n",
		"cut-off date:                  2024-10-17T00:00:00Z\n",
		"free at 2024-06-01T00:00:00Z:  yes\n",
		"granted by:                    everyone until 2024-10-17T00:00:00Z, then holders of any of: duo_enterprise, duo_pro\n",
		"min GitLab version:            16.8\n",
		"services:                      code_suggestions, self_hosted_models\n",
		"catalog:                       catalog/example (layout)\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q in:\n%s", want, stdout)
		}
	}

	// Default time is the clock's now; JSON has everything.
	code, stdout, _ = runCLI(t, "catalog", "show", "--format", "json", "amazon_q_integration")
	var v struct {
		Name         string    `json:"name"`
		LicenseTypes []string  `json:"license_types"`
		At           time.Time `json:"at"`
		FreeAt       bool      `json:"free_at"`
		Services     []string  `json:"services"`
		Audiences    []string  `json:"audiences"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v:\n%s", code, err, stdout)
	}
	if !v.At.Equal(fixedNow) || !v.FreeAt || !slices.Equal(v.LicenseTypes, []string{"ultimate"}) ||
		!slices.Equal(v.Services, []string{"amazon_q_integration"}) || !slices.Equal(v.Audiences, []string{"gitlab-ai-gateway"}) {
		t.Errorf("got %+v", v)
	}

	_, stdout, _ = runCLI(t, "catalog", "show", "duo_chat")
	if !strings.Contains(stdout, "free at 2025-03-01T12:00:00Z:  no\n") ||
		!strings.Contains(stdout, "granted by:                    holders of any of: duo_enterprise, duo_pro\n") {
		t.Errorf("after the cut-off:\n%s", stdout)
	}
}

// Done-when: on the real legacy file, a Duo Pro customer after the cut-offs
// gets exactly the duo_pro bundles plus the unit primitives that never had a
// cut-off, each with its audience.
func TestCatalogScopesDuoProOnRealLegacyFile(t *testing.T) {
	needReal(t, realLegacyFile)
	code, stdout, stderr := runCLI(t, "catalog", "scopes", "--add-ons", "duo_pro", "--at", "2025-01-01T00:00:00Z", "--catalog", realLegacyFile)
	want := `SCOPE                          AUDIENCES                     GRANTED BY
amazon_q_integration           gitlab-ai-gateway             free access
complete_code                  gitlab-ai-gateway             duo_pro
documentation_search           gitlab-ai-gateway             duo_pro
duo_chat                       gitlab-ai-gateway             duo_pro
duo_workflow_execute_workflow  gitlab-duo-workflow-service   free access
explain_code                   gitlab-ai-gateway             duo_pro
fix_code                       gitlab-ai-gateway             duo_pro
generate_code                  gitlab-ai-gateway             duo_pro
include_file_context           gitlab-ai-gateway             duo_pro
include_snippet_context        gitlab-ai-gateway             duo_pro
observability_all              gitlab-observability-backend  free access
refactor_code                  gitlab-ai-gateway             duo_pro
security_scans                 gitlab-security-gateway       free access
write_tests                    gitlab-ai-gateway             duo_pro
`
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("exit %d, stderr %q\ngot:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
}

func TestCatalogScopes(t *testing.T) {
	// No add-ons, default clock (2025-03-01): free access only.
	code, stdout, _ := runCLI(t, "catalog", "scopes", "--format", "json")
	var v struct {
		At        time.Time `json:"at"`
		AddOns    []string  `json:"add_ons"`
		Audiences []string  `json:"audiences"`
		Scopes    []struct {
			Name       string   `json:"name"`
			Audiences  []string `json:"audiences"`
			FreeAccess bool     `json:"free_access"`
			AddOns     []string `json:"add_ons"`
		} `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil || code != exitOK {
		t.Fatalf("exit %d, %v:\n%s", code, err, stdout)
	}
	var names []string
	for _, s := range v.Scopes {
		names = append(names, s.Name)
		if !s.FreeAccess || len(s.AddOns) != 0 {
			t.Errorf("%+v: without add-ons only free access can grant", s)
		}
	}
	// Never cut off, or cut off after 2025-03-01 (the 2025-05-15 batch and
	// later); the 2024 and 2025-02-20 cut-offs have passed.
	wantFree := []string{
		"ai_gateway_model_provider_proxy", "amazon_q_integration", "ask_work_item", "description_composer",
		"duo_agent_platform", "duo_classic_chat", "duo_workflow_execute_workflow", "feature_discovery_search",
		"generate_embeddings_codebase", "include_repository_context", "measure_comment_temperature",
		"observability_all", "security_scans", "self_hosted_duo_agent_platform", "summarize_new_merge_request",
	}
	if !v.At.Equal(fixedNow) || !slices.Equal(v.AddOns, []string{}) || !slices.Equal(names, wantFree) {
		t.Errorf("at %s add-ons %v scopes %v", v.At, v.AddOns, names)
	}
	if !slices.Equal(v.Audiences, []string{"gitlab-ai-gateway", "gitlab-duo-workflow-service", "gitlab-observability-backend", "gitlab-security-gateway"}) {
		t.Errorf("audiences %v", v.Audiences)
	}

	// Add-ons are trimmed and deduplicated; a UP that is free and bundled
	// says both.
	_, stdout, _ = runCLI(t, "catalog", "scopes", "--add-ons", " duo_core, duo_core ", "--at", "2025-12-01T00:00:00Z")
	if !strings.Contains(stdout, "duo_agent_platform ") ||
		!strings.Contains(stdout, "free access until 2026-01-15T00:00:00Z, duo_core\n") ||
		!strings.Contains(stdout, "duo_classic_chat                 gitlab-ai-gateway                               duo_core\n") {
		t.Errorf("got:\n%s", stdout)
	}
}
