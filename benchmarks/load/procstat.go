package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// boxTicks is the box-wide CPU time of the aggregate "cpu" line of
// /proc/stat, in USER_HZ ticks summed over every CPU.
type boxTicks struct {
	// busy is user+nice+system+irq+softirq+steal: every tick some CPU was
	// not idle or waiting for I/O, including the ticks the hypervisor
	// took (steal), which this guest could not use either.
	busy  uint64
	steal uint64
	// total is busy plus idle and iowait. guest and guest_nice are left
	// out: the kernel already counts them in user and nice.
	total uint64
}

// parseProcStat reads the aggregate "cpu" line of a /proc/stat text: user
// nice system idle iowait irq softirq steal (guest guest_nice follow on
// kernels since 2.6.33 and are ignored). Kernels before 2.6.11 have no
// steal field; fewer than the first seven fields is an error. name is the
// file the text came from, for the error.
func parseProcStat(name, text string) (boxTicks, error) {
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 8 {
			return boxTicks{}, fmt.Errorf("%s:%d: cpu line has %d fields, want at least 7 counters", name, i+1, len(f)-1)
		}
		var v [8]uint64
		for j := range v {
			if j+1 >= len(f) {
				break // no steal field
			}
			n, err := strconv.ParseUint(f[j+1], 10, 64)
			if err != nil {
				return boxTicks{}, fmt.Errorf("%s:%d: cpu field %d %q: not a tick count", name, i+1, j+1, f[j+1])
			}
			v[j] = n
		}
		user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
		busy := user + nice + system + irq + softirq + steal
		return boxTicks{busy: busy, steal: steal, total: busy + idle + iowait}, nil
	}
	return boxTicks{}, fmt.Errorf("%s: no aggregate cpu line", name)
}

// readProcStat reads the box's CPU ticks from /proc/stat.
func readProcStat() (boxTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return boxTicks{}, err
	}
	return parseProcStat("/proc/stat", string(b))
}

// share returns the busy and steal fractions (0–1) of the box's ticks
// between two readings, a then b; ok is false when no tick elapsed or the
// counters went backwards (a missing reading is a zero boxTicks).
func share(a, b boxTicks) (busy, steal float64, ok bool) {
	if a.total == 0 || b.total <= a.total || b.busy < a.busy || b.steal < a.steal {
		return 0, 0, false
	}
	dt := float64(b.total - a.total)
	return float64(b.busy-a.busy) / dt, float64(b.steal-a.steal) / dt, true
}
