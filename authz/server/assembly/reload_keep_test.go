package assembly

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// TestReloadKeepsWhatDidNotChange: a reload with unchanged inputs (also a
// comment-only edit) rebuilds nothing and keeps the snapshot; a manifest
// edit rebuilds only its backend, the other keeps its policy and warm
// cache; the decision-cache counters never go backwards.
func TestReloadKeepsWhatDidNotChange(t *testing.T) {
	dir := t.TempDir()
	file, src, err := manifest.ExampleSource("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	// The whole example directory: the manifest names its prompt registry.
	if err := os.CopyFS(dir, manifest.ExampleFS()); err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(dir, filepath.Base(file))
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = "embedded:example"
	cfg.Backends = []config.Backend{
		{Name: "ai_gateway", Manifest: mpath, Hosts: []string{"cloud.gitlab.com"}},
		{Name: "duo_workflow", Manifest: "embedded:duo_workflow", Hosts: []string{"duo-workflow.example"}},
	}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	cfg.Logging.AllowSampleRate = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	tok, err := dev.Mint(instance, "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + tok
	check := func() {
		t.Helper()
		if resp, _ := a.Server.Check(ctx, checkRequest("/v2/code/completions", auth)); resp.GetOkResponse() == nil {
			t.Fatalf("want allow: %v", resp)
		}
	}
	metric := func(name, label string) float64 {
		t.Helper()
		families, err := a.Server.MetricsRegistry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetValue() == label {
						return m.GetCounter().GetValue() + m.GetGauge().GetValue()
					}
				}
			}
		}
		return 0
	}
	for range 3 {
		check()
	}
	first := a.Server.Snapshot()
	aiPolicy := func() any { b, _ := a.Server.Snapshot().Backend("ai_gateway"); return b.Decider }
	dwPolicy := func() any { b, _ := a.Server.Snapshot().Backend("duo_workflow"); return b.Decider }
	ai0, dw0 := aiPolicy(), dwPolicy()

	// Unchanged inputs, then a comment-only edit: nothing rebuilt.
	if err := a.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mpath, append([]byte("# a comment\n"), src...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if a.Server.Snapshot() != first {
		t.Fatal("a reload with unchanged inputs swapped the snapshot")
	}
	if got := metric("ccauthz_reloads_total", "unchanged"); got != 2 {
		t.Errorf("reloads{unchanged} = %v, want 2", got)
	}
	hits := metric("ccauthz_decision_cache_hits_total", "ai_gateway")
	if hits != 2 {
		t.Fatalf("decision cache hits %v, want 2", hits)
	}

	// A real edit of the ai_gateway manifest: only that backend is rebuilt.
	edited := strings.Replace(string(src), "small_max:", "small_max: 7 #", 1)
	if edited == string(src) {
		t.Fatal("example manifest has no seat_buckets.small_max to edit")
	}
	if err := os.WriteFile(mpath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if a.Server.Snapshot() == first || aiPolicy() == ai0 {
		t.Fatal("an edited manifest must rebuild its backend")
	}
	if dwPolicy() != dw0 {
		t.Error("the unchanged duo_workflow backend must keep its policy")
	}
	if got := metric("ccauthz_decision_cache_hits_total", "ai_gateway"); got < hits {
		t.Errorf("decision cache hits went backwards across a reload: %v < %v", got, hits)
	}
	check()
	check()
	if got := metric("ccauthz_decision_cache_hits_total", "ai_gateway"); got != hits+1 {
		t.Errorf("hits after reload %v, want %v (carried over plus one)", got, hits+1)
	}
	// The kept and rebuilt snapshots both serve the catalog and manifests
	// (the unit-primitive directory and the API read them).
	if snap := a.Server.Snapshot(); snap.Catalog == nil {
		t.Error("a rebuilt snapshot lost its catalog")
	}
	if b, _ := a.Server.Snapshot().Backend("duo_workflow"); b.Manifest == nil {
		t.Error("a kept backend lost its manifest")
	}

	// An edit in the prompt registry (not the manifest file) changes what
	// the policy compiles: the backend is rebuilt.
	ai1, before := aiPolicy(), a.Server.Snapshot()
	prompt := filepath.Join(dir, "prompts", "chat", "react", "base", "1.0.0.yml")
	pb, err := os.ReadFile(prompt)
	if err != nil {
		t.Fatal(err)
	}
	pe := strings.Replace(string(pb), "  - duo_chat\n", "  - duo_chat\n  - documentation_search\n", 1)
	if pe == string(pb) {
		t.Fatal("example prompt has no duo_chat unit primitive to extend")
	}
	if err := os.WriteFile(prompt, []byte(pe), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if a.Server.Snapshot() == before || aiPolicy() == ai1 {
		t.Error("an edited prompt definition must rebuild its backend")
	}
	if a.Server.Snapshot().Catalog == nil {
		t.Error("the rebuilt snapshot lost its catalog")
	}
}

// TestReloadKeptBackendRace: checks keep running on a backend the reload
// keeps while the other backend is rebuilt and the snapshot swapped; the
// kept backend is shared by the old and the new snapshot, so preparing the
// new one must not write to it (go test -race).
func TestReloadKeptBackendRace(t *testing.T) {
	dir := t.TempDir()
	file, src, err := manifest.ExampleSource("ai_gateway")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, manifest.ExampleFS()); err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(dir, filepath.Base(file))
	cfg := config.Default()
	cfg.Catalog = "embedded:example"
	cfg.Backends = []config.Backend{
		{Name: "ai_gateway", Manifest: mpath, Hosts: []string{"cloud.gitlab.com"}},
		{Name: "duo_workflow", Manifest: "embedded:duo_workflow", Hosts: []string{"duo-workflow.example"}},
	}
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	cfg.Logging.AllowSampleRate = 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dw := func() any { b, _ := a.Server.Snapshot().Backend("duo_workflow"); return b.Decider }
	dw0 := dw()

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			req := checkRequest("/v1/whatever", "")
			req.Attributes.ContextExtensions = map[string]string{"backend": "duo_workflow"}
			if resp, _ := a.Server.Check(ctx, req); resp.GetDeniedResponse() == nil {
				t.Errorf("an unauthenticated check was not denied: %v", resp)
				return
			}
			n++
		}
	}()
	for i := range 3 {
		edited := strings.Replace(string(src), "small_max:", fmt.Sprintf("small_max: %d #", 10+i), 1)
		if err := os.WriteFile(mpath, []byte(edited), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.Server.Reload(ctx, "test"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if n := <-done; n == 0 {
		t.Error("no check ran during the reloads")
	}
	if dw() != dw0 {
		t.Error("the unchanged duo_workflow backend must keep its policy")
	}
}
