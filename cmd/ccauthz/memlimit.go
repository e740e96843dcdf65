package main

import (
	"log/slog"
	"strconv"
)

// DefaultMemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT) that
// `serve` sets when the environment does not: the garbage collector works
// harder as the heap nears it instead of letting it double past the live
// set, which keeps RSS flat under a churn of distinct tokens. It is a soft
// limit (the heap may exceed it rather than thrash). Set GOMEMLIMIT to
// override it, e.g. to ~90 % of a container's memory limit (the Kubernetes
// manifests derive it from resources.limits.memory).
const DefaultMemoryLimit int64 = 256 << 20

// memoryLimit is the limit serve sets: DefaultMemoryLimit unless GOMEMLIMIT
// is set (then the runtime already applied it and serve leaves it alone).
func memoryLimit(getenv func(string) string) (int64, bool) {
	if getenv != nil && getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	return DefaultMemoryLimit, true
}

// applyMemoryLimit sets the default soft memory limit in the real process.
func applyMemoryLimit(e *env, logger *slog.Logger) {
	if e.setMemoryLimit == nil {
		return
	}
	if limit, ok := memoryLimit(e.getenv); ok {
		e.setMemoryLimit(limit)
		logger.Info("memory limit", "gomemlimit", strconv.FormatInt(limit, 10), "source", "default")
	}
}
