package main

import (
	"io"
	"log/slog"
	"testing"
)

func TestMemoryLimitDefault(t *testing.T) {
	if l, ok := memoryLimit(func(string) string { return "" }); !ok || l != DefaultMemoryLimit {
		t.Errorf("no GOMEMLIMIT: %d %v, want the default", l, ok)
	}
	if _, ok := memoryLimit(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	}); ok {
		t.Error("GOMEMLIMIT set: serve must leave the runtime's limit alone")
	}
	var set int64
	e := &env{setMemoryLimit: func(l int64) int64 { set = l; return 0 }, getenv: func(string) string { return "" }}
	applyMemoryLimit(e, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if set != DefaultMemoryLimit {
		t.Errorf("applyMemoryLimit set %d", set)
	}
	applyMemoryLimit(&env{}, slog.New(slog.NewJSONHandler(io.Discard, nil))) // tests: no-op, no panic
}
