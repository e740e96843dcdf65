package main

import (
	"math"
	"strings"
	"testing"
)

// A /proc/stat of a 2-CPU guest, one second apart (USER_HZ 100: 200 ticks).
const (
	procStatBefore = `cpu  4212716 461039 659162 945202 12913 0 48509 42338 0 0
cpu0 2111262 228267 319389 488880 3302 0 22485 20659 0 0
cpu1 2101453 232771 339772 456322 9610 0 26023 21679 0 0
intr 117764262 0 0 0
ctxt 266344021
btime 1764630000
`
	// +120 user, +10 nice, +30 system, +20 idle, +4 iowait, +6 softirq,
	// +10 steal: 176 busy of 200.
	procStatAfter = `cpu  4212836 461049 659192 945222 12917 0 48515 42348 0 0
cpu0 2111322 228272 319404 488890 3304 0 22488 20664 0 0
cpu1 2101513 232776 339787 456332 9612 0 26026 21683 0 0
intr 117765262 0 0 0
`
)

func TestParseProcStat(t *testing.T) {
	a, err := parseProcStat("stat", procStatBefore)
	if err != nil {
		t.Fatal(err)
	}
	wantBusy := uint64(4212716 + 461039 + 659162 + 0 + 48509 + 42338)
	if a.busy != wantBusy || a.steal != 42338 || a.total != wantBusy+945202+12913 {
		t.Errorf("got %+v, want busy %d, steal 42338, total %d", a, wantBusy, wantBusy+945202+12913)
	}
	b, err := parseProcStat("stat", procStatAfter)
	if err != nil {
		t.Fatal(err)
	}
	busy, steal, ok := share(a, b)
	if !ok || math.Abs(busy-0.88) > 1e-9 || math.Abs(steal-0.05) > 1e-9 {
		t.Errorf("share: busy %v, steal %v, ok %v; want 0.88 (176 of 200 ticks), 0.05 (10 of 200)", busy, steal, ok)
	}
	// Backwards, the same reading twice, or a missing first reading: no figure.
	for _, c := range []struct{ a, b boxTicks }{{b, a}, {a, a}, {boxTicks{}, b}} {
		if _, _, ok := share(c.a, c.b); ok {
			t.Errorf("share(%+v, %+v): want not ok", c.a, c.b)
		}
	}
	// A kernel without the steal field (before 2.6.11): seven counters.
	old, err := parseProcStat("stat", "cpu  10 0 5 80 5 0 0\n")
	if err != nil || old.busy != 15 || old.steal != 0 || old.total != 100 {
		t.Errorf("seven counters: got %+v, %v", old, err)
	}
}

func TestParseProcStatErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"intr 1 2\nctxt 3\n", "stat: no aggregate cpu line"},
		{"cpu0 1 2 3 4 5 6 7 8\n", "stat: no aggregate cpu line"},
		{"intr 1\ncpu  1 2 3 4 5 6\n", "stat:2: cpu line has 6 fields, want at least 7 counters"},
		{"cpu  1 2 3 4 x 6 7 8\n", `stat:1: cpu field 5 "x": not a tick count`},
		{"cpu  1 2 3 -4 5 6 7 8\n", `stat:1: cpu field 4 "-4": not a tick count`},
	} {
		_, err := parseProcStat("stat", c.text)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %s", c.text, err, c.want)
		}
	}
}

// TestReadProcStat reads this machine's /proc/stat (Linux only).
func TestReadProcStat(t *testing.T) {
	a, err := readProcStat()
	if err != nil {
		if strings.Contains(err.Error(), "no such file") {
			t.Skip("no /proc/stat here")
		}
		t.Fatal(err)
	}
	if a.total == 0 || a.busy > a.total || a.steal > a.busy {
		t.Errorf("implausible reading %+v", a)
	}
}
