package ratelimit

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// examplePlans are the plans of the bundled example manifests.
func examplePlans(t *testing.T) []*Plan {
	t.Helper()
	var plans []*Plan
	for _, name := range manifest.ExampleNames() {
		m, err := manifest.Example(name)
		if err != nil {
			t.Fatal(err)
		}
		if m, err = m.Bind(catalog.Example()); err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan("", m)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	return plans
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./authz/ratelimit -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: the generator output changed (run go test ./authz/ratelimit -update and review the diff)\ngot:\n%s", path, got)
	}
}

func TestGenerateConfigGolden(t *testing.T) {
	got, err := GenerateConfig(DefaultDomain, examplePlans(t))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ratelimit_config.yaml", got)
	again, _ := GenerateConfig(DefaultDomain, examplePlans(t))
	if !bytes.Equal(got, again) {
		t.Fatal("GenerateConfig is not deterministic")
	}
}

func TestEnvoyActionsGolden(t *testing.T) {
	got, err := EnvoyActionsYAML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "envoy_actions.yaml", got)
}

func TestGenerateConfigRejects(t *testing.T) {
	plans := examplePlans(t)
	if _, err := GenerateConfig("bad domain", plans); err == nil || !strings.Contains(err.Error(), `domain "bad domain" must be`) {
		t.Errorf("bad domain: %v", err)
	}
	if _, err := GenerateConfig("d", append(plans, plans[0])); err == nil || !strings.Contains(err.Error(), "has two manifests") {
		t.Errorf("duplicate backend: %v", err)
	}
}

// engineLookup resolves a descriptor against a generated config the way
// envoyproxy/ratelimit does (src/config/config_impl.go GetLimit): at each
// entry, key_value first, then the key alone; the limit counts only at the
// descriptor's last entry.
func engineLookup(cfg *rlConfig, entries [][2]string) *rlLimit {
	level := cfg.Descriptors
	var limit *rlLimit
	for i, e := range entries {
		var next *rlDescriptor
		for j := range level {
			if level[j].Key == e[0] && level[j].Value == e[1] {
				next = &level[j]
			}
		}
		if next == nil {
			for j := range level {
				if level[j].Key == e[0] && level[j].Value == "" {
					next = &level[j]
				}
			}
		}
		if next == nil {
			return nil
		}
		if i == len(entries)-1 {
			limit = next.RateLimit
		}
		level = next.Descriptors
	}
	return limit
}

// TestResolveMatchesGeneratedConfig proves the local limiter and the
// distributed engine agree: for every combination of entry values, the
// limit Plan.Resolve picks equals what the generated config gives the same
// descriptor.
func TestResolveMatchesGeneratedConfig(t *testing.T) {
	plans := examplePlans(t)
	raw, err := GenerateConfig(DefaultDomain, plans)
	if err != nil {
		t.Fatal(err)
	}
	var cfg rlConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range plans {
		for _, backend := range []string{"ai_gateway", "duo_workflow_service", "other"} {
			for _, class := range []string{"code_suggestions", "chat", "standard", "workflow", NoClass} {
				for _, realm := range []string{"saas", "self-managed", Unknown} {
					for _, seats := range []string{"any", "small", "medium", "large"} {
						for _, id := range []string{"abc", Unknown} {
							entries := map[string]string{EntryBackend: backend, EntryRateClass: class, EntryRealm: realm,
								EntrySeatBucket: seats, EntryInstanceID: id, EntryGlobalUserID: id}
							for _, k := range EnvoyKinds {
								if backend != p.Backend {
									continue
								}
								want, applies := p.Resolve(k, entries)
								desc := [][2]string{{KindKey, string(k)}}
								for _, key := range Layout(k) {
									desc = append(desc, [2]string{key, entries[key]})
								}
								got := engineLookup(&cfg, desc)
								name := fmt.Sprint(desc)
								switch {
								case !applies && got != nil && !got.Unlimited:
									t.Errorf("%s: engine limits %+v, local limiter does not", name, got)
								case applies && (got == nil || got.Unlimited || got.RequestsPerUnit != want.RequestsPerUnit || got.Unit != want.Unit):
									t.Errorf("%s: engine %+v, local limiter %+v", name, got, want)
								}
								checked++
							}
						}
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d combinations checked", checked)
	}
}

func TestResolve(t *testing.T) {
	var ai *Plan
	for _, p := range examplePlans(t) {
		if p.Backend == "ai_gateway" {
			ai = p
		}
	}
	base := map[string]string{EntryBackend: "ai_gateway", EntryRateClass: "code_suggestions", EntryRealm: "self-managed",
		EntrySeatBucket: "medium", EntryInstanceID: "i-1", EntryGlobalUserID: "u-1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name    string
		kind    Kind
		entries map[string]string
		want    string // "" = no limit
	}{
		{"instance, medium bucket", KindPerInstance, base, "6000/minute"},
		{"instance, any bucket", KindPerInstance, with(EntrySeatBucket, "any"), "600/minute"},
		{"instance, garbage bucket is any", KindPerInstance, with(EntrySeatBucket, "huge"), "600/minute"},
		{"instance, saas exempt", KindPerInstance, with(EntryRealm, "saas"), ""},
		{"instance, unknown id exempt", KindPerInstance, with(EntryInstanceID, Unknown), ""},
		{"user", KindPerUser, base, "60/minute"},
		{"user, unknown id exempt", KindPerUser, with(EntryGlobalUserID, Unknown), ""},
		{"default class", KindPerUser, with(EntryRateClass, "standard"), "20/minute"},
		{"no class", KindPerUser, with(EntryRateClass, NoClass), ""},
		{"other backend", KindPerUser, with(EntryBackend, "duo_workflow_service"), ""},
	}
	for _, c := range cases {
		l, ok := ai.Resolve(c.kind, c.entries)
		got := ""
		if ok {
			got = fmt.Sprintf("%d/%s", l.RequestsPerUnit, l.Unit)
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	if l, ok := ai.AuthFailures(); !ok || l.RequestsPerUnit != 30 {
		t.Errorf("auth failures %v %v", l, ok)
	}
}

func TestNewPlanNeedsBoundManifest(t *testing.T) {
	m, err := manifest.Example("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPlan("x", m); err == nil || !strings.Contains(err.Error(), "must be bound") {
		t.Fatalf("unbound manifest: %v", err)
	}
}
