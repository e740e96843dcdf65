package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

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

// setMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// container's cgroup memory limit when GOMEMLIMIT is not set and a limit is
// readable. An explicit GOMEMLIMIT (the runtime already applied it) always
// wins; outside a container, or without a limit, nothing changes.
func setMemoryLimit(logger *slog.Logger, getenv func(string) string, readFile func(string) ([]byte, error)) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, file, ok := cgroupMemoryLimit(readFile)
	if !ok {
		return
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	logger.Info("memory limit set from the container's cgroup limit", "cgroup_file", file,
		"cgroup_limit_bytes", limit, "gomemlimit_bytes", soft)
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
