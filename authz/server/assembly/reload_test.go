package assembly

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/server"
)

// writeCatalog copies the bundled example catalog to dir; with audience
// set, the ai_gateway backend's jwt_aud is changed to it (a catalog change
// that turns the test token's allow into a 401).
func writeCatalog(t *testing.T, dir, audience string) {
	t.Helper()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "..", "..", "catalog", "example"))); err != nil {
		t.Fatal(err)
	}
	if audience == "" {
		return
	}
	p := filepath.Join(dir, "backend_services", "ai_gateway.yml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "jwt_aud: gitlab-ai-gateway", "jwt_aud: "+audience, 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// swapLink points link at target atomically (a new link renamed over the
// old one), as git-sync and the kubelet do.
func swapLink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// serveCatalog assembles a server on the catalog at path, watched every
// 20ms, and returns a function that answers the test token's check status.
func serveCatalog(t *testing.T, path string) func() int {
	t.Helper()
	dev, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Catalog = path
	cfg.Backends = []config.Backend{{Name: "ai_gateway", Manifest: "embedded:ai_gateway"}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	cfg.Logging.AllowSampleRate = 0
	ctx, cancel := context.WithCancel(context.Background())
	// The baseline is taken before the build, as serve does: a swap that
	// lands before the watcher goroutine runs is still seen.
	since := server.Fingerprint(cfg.WatchedPaths())
	a, err := New(ctx, &cfg, Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		a.Server.WatchSince(ctx, cfg.WatchedPaths(), since, 20*time.Millisecond, 40*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-watched; a.Close() })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := a.Verifier.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	tok, err := dev.Mint(instance, "self-managed", []string{"complete_code"}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return func() int {
		resp, _ := a.Server.Check(context.Background(), checkRequest("/v2/code/completions", "Bearer "+tok))
		if resp.GetOkResponse() != nil {
			return 200
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode())
	}
}

// waitStatus polls the check until it answers want (bounded).
func waitStatus(t *testing.T, check func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a reload rebuilds the policy; the CI box may be loaded
	got := check()
	for got != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = check()
	}
	if got != want {
		t.Fatalf("check answers %d, want %d after the swap", got, want)
	}
}

// TestReloadSwaps performs each way files arrive in production and sees
// the new catalog served through a real check: the first revision allows
// the token, the second changes the backend's audience so it gets 401.
func TestReloadSwaps(t *testing.T) {
	t.Run("git-sync root link current → rev-N", func(t *testing.T) {
		root := t.TempDir()
		writeCatalog(t, filepath.Join(root, "rev-1"), "")
		writeCatalog(t, filepath.Join(root, "rev-2"), "another-audience")
		current := filepath.Join(root, "current")
		swapLink(t, "rev-1", current)
		check := serveCatalog(t, current)
		waitStatus(t, check, 200)
		swapLink(t, "rev-2", current)
		if err := os.RemoveAll(filepath.Join(root, "rev-1")); err != nil { // git-sync prunes the old worktree
			t.Fatal(err)
		}
		waitStatus(t, check, 401)
	})
	t.Run("ConfigMap volume ..data swap", func(t *testing.T) {
		mount := t.TempDir()
		writeCatalog(t, filepath.Join(mount, "..2026_12_01_22_00_00.1"), "")
		swapLink(t, "..2026_12_01_22_00_00.1", filepath.Join(mount, "..data"))
		for _, d := range []string{"add_ons", "backend_services", "license_types", "services", "unit_primitives"} {
			if err := os.Symlink(filepath.Join("..data", d), filepath.Join(mount, d)); err != nil {
				t.Fatal(err)
			}
		}
		check := serveCatalog(t, mount)
		waitStatus(t, check, 200)
		// The kubelet's update: a new timestamped directory, ..data
		// swapped to it, the old one removed.
		writeCatalog(t, filepath.Join(mount, "..2026_12_01_22_05_00.2"), "another-audience")
		swapLink(t, "..2026_12_01_22_05_00.2", filepath.Join(mount, "..data"))
		if err := os.RemoveAll(filepath.Join(mount, "..2026_12_01_22_00_00.1")); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, check, 401)
	})
	t.Run("plain edit in place", func(t *testing.T) {
		dir := t.TempDir()
		writeCatalog(t, dir, "")
		check := serveCatalog(t, dir)
		waitStatus(t, check, 200)
		p := filepath.Join(dir, "backend_services", "ai_gateway.yml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), "jwt_aud: gitlab-ai-gateway", "jwt_aud: edited-audience", 1))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, check, 401)
	})
}

// TestPinnedRoot: a load through a swapped link reads one revision.
func TestPinnedRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "rev-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	swapLink(t, "rev-1", filepath.Join(root, "current"))
	if got, ok := pinnedRoot(filepath.Join(root, "current")); !ok || got != filepath.Join(root, "rev-1") {
		t.Errorf("git-sync root pinned to %q %v", got, ok)
	}
	if err := os.Mkdir(filepath.Join(root, "rev-1", "..x"), 0o755); err != nil {
		t.Fatal(err)
	}
	swapLink(t, "..x", filepath.Join(root, "rev-1", "..data"))
	if got, ok := pinnedRoot(filepath.Join(root, "rev-1")); !ok || got != filepath.Join(root, "rev-1", "..x") {
		t.Errorf("ConfigMap root pinned to %q %v", got, ok)
	}
	if _, ok := pinnedRoot(t.TempDir()); ok {
		t.Error("a plain directory needs no pinning")
	}
}
