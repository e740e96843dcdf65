package main

import (
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT) that
// `serve` sets when neither the environment nor a container limit gives one:
// the garbage collector works harder as the heap nears it instead of letting
// it double past the live set, which keeps RSS flat under a churn of
// distinct tokens. It is a soft limit (the heap may exceed it rather than
// thrash).
const DefaultMemoryLimit int64 = 256 << 20

// cgroup memory limit files: cgroup v2 first, then v1. These are kernel
// interfaces, the same in every Linux container.
var cgroupMemoryFiles = []string{
	"/sys/fs/cgroup/memory.max",
	"/sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// memoryLimitShare is the share of the container's memory limit given to
// the Go heap as its soft limit: the rest is headroom for goroutine stacks,
// OPA's and the runtime's non-heap memory, so the GC works harder before the
// kernel's OOM killer acts.
const memoryLimitShare = 0.9

// Sources of the memory limit serve sets (logged as "source").
const (
	memoryLimitFromCgroup  = "cgroup"
	memoryLimitFromDefault = "default"
)

// memoryLimit is the soft memory limit serve sets, in this order:
//   - GOMEMLIMIT set: ok is false (the runtime already applied it; an
//     explicit setting always wins);
//   - a readable cgroup memory limit: 90 % of it (source "cgroup", file is
//     the cgroup file read);
//   - else DefaultMemoryLimit (source "default").
//
// A nil readFile reads no cgroup file.
func memoryLimit(getenv func(string) string, readFile func(string) ([]byte, error)) (limit int64, source, file string, ok bool) {
	if getenv != nil && getenv("GOMEMLIMIT") != "" {
		return 0, "", "", false
	}
	if readFile != nil {
		if cg, f, found := cgroupMemoryLimit(readFile); found {
			return int64(float64(cg) * memoryLimitShare), memoryLimitFromCgroup, f, true
		}
	}
	return DefaultMemoryLimit, memoryLimitFromDefault, "", true
}

// cgroupMemoryLimit reads the first readable cgroup memory limit; ok is
// false when none is set ("max" in v2, a value near MaxInt64 in v1).
func cgroupMemoryLimit(readFile func(string) ([]byte, error)) (int64, string, bool) {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, f, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			return 0, f, false
		}
		return n, f, true
	}
	return 0, "", false
}

// applyMemoryLimit sets the soft memory limit (memoryLimit) in the real
// process; in tests e.setMemoryLimit is nil and nothing changes.
func applyMemoryLimit(e *env, logger *slog.Logger) {
	if e.setMemoryLimit == nil {
		return
	}
	limit, source, file, ok := memoryLimit(e.getenv, e.readFile)
	if !ok {
		return
	}
	e.setMemoryLimit(limit)
	args := []any{"gomemlimit_bytes", limit, "source", source}
	if file != "" {
		args = append(args, "cgroup_file", file)
	}
	logger.Info("memory limit", args...)
}
