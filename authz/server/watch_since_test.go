package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchSinceSeesAChangeBeforeItStarts: a change made after the baseline
// was taken (before the serving snapshot was built) but before the watcher
// runs is reloaded; Watch's own baseline would have missed it.
func TestWatchSinceSeesAChangeBeforeItStarts(t *testing.T) {
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	since := Fingerprint([]string{f})
	if err := os.WriteFile(f, []byte("bb"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(baseline string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		called := make(chan struct{}, 1)
		go watchFiles(ctx, []string{f}, baseline, 5*time.Millisecond, 10*time.Millisecond, func() {
			select {
			case called <- struct{}{}:
			default:
			}
		})
		select {
		case <-called:
			return true
		case <-time.After(500 * time.Millisecond):
			return false
		}
	}
	if !run(since) {
		t.Error("a change after the baseline was not reloaded")
	}
	if run(Fingerprint([]string{f})) {
		t.Error("reloaded with nothing changed since the baseline")
	}
}
