package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Watch polls paths (files or directories, walked recursively) every
// interval and reloads once their content fingerprint (names, sizes,
// modification times) has changed and then stayed the same for debounce, so
// an editor's or a deploy tool's burst of writes triggers one reload. Polling
// rather than inotify keeps it correct across symlink swaps (Kubernetes
// ConfigMaps) and editors that replace files. It returns when ctx is done.
func (s *Server) Watch(ctx context.Context, paths []string, interval, debounce time.Duration) {
	if len(paths) == 0 {
		return
	}
	current := fingerprint(paths)
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
		current, pending = fp, ""
		_ = s.Reload(ctx, "file change")
	}
}

// fingerprint hashes the names, sizes and modification times of every file
// under paths; a missing or unreadable path is part of the fingerprint too.
func fingerprint(paths []string) string {
	h := sha256.New()
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s\x00error %v\x00", path, err)
				return nil
			}
			info, err := os.Stat(path) // follows symlinks, unlike d.Info
			if err != nil {
				fmt.Fprintf(h, "%s\x00error %v\x00", path, err)
				return nil
			}
			if !info.IsDir() {
				fmt.Fprintf(h, "%s\x00%d\x00%d\x00", path, info.Size(), info.ModTime().UnixNano())
			}
			return nil
		})
	}
	return string(h.Sum(nil))
}
