package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"
)

// Watch polls paths (files or directories, walked recursively) every
// interval and reloads once their content fingerprint has changed and then
// stayed the same for debounce (see WatchFiles). It returns when ctx is done.
func (s *Server) Watch(ctx context.Context, paths []string, interval, debounce time.Duration) {
	s.WatchSince(ctx, paths, Fingerprint(paths), interval, debounce)
}

// WatchSince is Watch from a fingerprint taken before the serving snapshot
// was built (Fingerprint, called before assembly): a change that lands
// between that build and the watcher's start is then reloaded too, instead
// of becoming the watcher's baseline and being missed.
func (s *Server) WatchSince(ctx context.Context, paths []string, since string, interval, debounce time.Duration) {
	watchFiles(ctx, paths, since, interval, debounce, func() { _ = s.Reload(ctx, "file change") })
}

// Fingerprint is the content fingerprint WatchFiles compares: every file's
// resolved path, size and modification time under paths.
func Fingerprint(paths []string) string { return fingerprint(paths) }

// WatchFiles polls paths every interval and calls changed once their
// fingerprint (every file's resolved path, size and modification time) has
// changed and then stayed the same for debounce, so an editor's or a deploy
// tool's burst of writes triggers one call. Polling rather than inotify, and
// resolving every symlink on the way, keeps it correct however files
// arrive: plain edits and editors that replace files, a Kubernetes
// ConfigMap or Secret volume (files are links through a `..data` link that
// the kubelet swaps), and a git-sync style root that is itself a link
// (`current → rev-N`) swapped to a new revision. It returns when ctx is done.
func WatchFiles(ctx context.Context, paths []string, interval, debounce time.Duration, changed func()) {
	watchFiles(ctx, paths, fingerprint(paths), interval, debounce, changed)
}

func watchFiles(ctx context.Context, paths []string, current string, interval, debounce time.Duration, changed func()) {
	if len(paths) == 0 || interval <= 0 {
		return
	}
	var pending string
	var since time.Time
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := fingerprint(paths)
		switch {
		case fp == current:
			pending = ""
			continue
		case fp != pending:
			pending, since = fp, time.Now()
			continue
		case time.Since(since) < debounce:
			continue
		}
		// current is the fingerprint from before the reload: files that
		// change while it reads them (a swap mid-load) differ from it on
		// the next poll and reload again.
		current, pending = fp, ""
		changed()
	}
}

// maxWatchDepth bounds how deep the fingerprint descends (a symlink loop
// is also cut by the visited set).
const maxWatchDepth = 32

// fingerprint hashes, for every file under paths, its path, the path every
// symlink on the way resolves to, its size and modification time; a
// missing or unreadable path is part of the fingerprint too. Symlinked
// directories are followed (each real directory once).
func fingerprint(paths []string) string {
	h := sha256.New()
	seen := map[string]bool{}
	for _, p := range paths {
		fingerprintPath(h, p, seen, 0)
	}
	return string(h.Sum(nil))
}

func fingerprintPath(h hash.Hash, p string, seen map[string]bool, depth int) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		fmt.Fprintf(h, "%s\x00error %v\x00", p, err)
		return
	}
	info, err := os.Stat(real)
	if err != nil {
		fmt.Fprintf(h, "%s\x00error %v\x00", p, err)
		return
	}
	if !info.IsDir() {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00", p, real, info.Size(), info.ModTime().UnixNano())
		return
	}
	fmt.Fprintf(h, "%s\x00dir %s\x00", p, real)
	if seen[real] || depth >= maxWatchDepth {
		return
	}
	seen[real] = true
	entries, err := os.ReadDir(real)
	if err != nil {
		fmt.Fprintf(h, "%s\x00error %v\x00", p, err)
		return
	}
	for _, e := range entries {
		fingerprintPath(h, filepath.Join(p, e.Name()), seen, depth+1)
	}
}
