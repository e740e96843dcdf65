package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"v2 limit", map[string]string{"/sys/fs/cgroup/memory.max": "536870912\n"}, 536870912, true},
		{"v2 unlimited", map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 0, false},
		{"v1 limit", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "268435456\n"}, 268435456, true},
		{"v1 unlimited", map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, false},
		{"garbage", map[string]string{"/sys/fs/cgroup/memory.max": "lots"}, 0, false},
		{"no cgroup", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := cgroupMemoryLimit(readFiles(tc.files))
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %d %v, want %d %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func readFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if v, ok := files[name]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
}

// TestMemoryLimitPrecedence: an explicit GOMEMLIMIT wins, else 90 % of a
// readable cgroup limit, else the default.
func TestMemoryLimitPrecedence(t *testing.T) {
	noEnv := func(string) string { return "" }
	withEnv := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	}
	limited := readFiles(map[string]string{"/sys/fs/cgroup/memory.max": "1000000000\n"})
	unlimited := readFiles(map[string]string{"/sys/fs/cgroup/memory.max": "max\n"})
	broken := func(string) ([]byte, error) { return nil, errors.New("absent") }

	if _, _, _, ok := memoryLimit(withEnv, limited); ok {
		t.Error("GOMEMLIMIT set: serve must leave the runtime's limit alone")
	}
	if l, src, f, ok := memoryLimit(noEnv, limited); !ok || l != 900000000 || src != memoryLimitFromCgroup || f != "/sys/fs/cgroup/memory.max" {
		t.Errorf("cgroup limit: %d %q %q %v, want 90%% of it", l, src, f, ok)
	}
	for name, read := range map[string]func(string) ([]byte, error){"unlimited": unlimited, "unreadable": broken, "nil": nil} {
		if l, src, _, ok := memoryLimit(noEnv, read); !ok || l != DefaultMemoryLimit || src != memoryLimitFromDefault {
			t.Errorf("%s cgroup: %d %q %v, want the default", name, l, src, ok)
		}
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	var set int64
	var logs bytes.Buffer
	e := &env{setMemoryLimit: func(l int64) int64 { set = l; return 0 }, getenv: func(string) string { return "" },
		readFile: readFiles(map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "2000000000\n"})}
	applyMemoryLimit(e, slog.New(slog.NewJSONHandler(&logs, nil)))
	if set != 1800000000 {
		t.Errorf("applyMemoryLimit set %d, want 90%% of the cgroup limit", set)
	}
	if !strings.Contains(logs.String(), `"gomemlimit_bytes":1800000000`) || !strings.Contains(logs.String(), `"source":"cgroup"`) {
		t.Errorf("not logged: %s", logs.String())
	}
	set = 0
	e.readFile = nil
	applyMemoryLimit(e, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if set != DefaultMemoryLimit {
		t.Errorf("no cgroup: applyMemoryLimit set %d, want the default", set)
	}
	set = 0
	e.getenv = func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	}
	applyMemoryLimit(e, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if set != 0 {
		t.Errorf("GOMEMLIMIT set, yet applyMemoryLimit set %d", set)
	}
	applyMemoryLimit(&env{}, slog.New(slog.NewJSONHandler(io.Discard, nil))) // tests: no-op, no panic
}
