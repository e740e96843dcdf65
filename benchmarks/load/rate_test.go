package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"0", []int{0}},
		{"0-3", []int{0, 1, 2, 3}},
		{"0,2-3", []int{0, 2, 3}},
		{" 1 , 1 ", []int{1}},
	} {
		got, err := parseCPUList(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%q: got %v, want %v", c.in, got, c.want)
		}
		for _, cpu := range c.want {
			if !got[cpu] {
				t.Errorf("%q: %d missing from %v", c.in, cpu, got)
			}
		}
	}
	for _, bad := range []string{"a", "1-", "3-1", "-1", "0,,1", "0-99999"} {
		if _, err := parseCPUList(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestOpenLoopMax uses the lead's open-loop figures of 2026-12-02: ccauthz
// 137 ms and the generator 130 ms of CPU per 1 000 checks.
func TestOpenLoopMax(t *testing.T) {
	const target, load = 137e-6, 130e-6
	both := allCPUs(2)
	c0, _ := parseCPUList("0")
	c1, _ := parseCPUList("1")
	for _, c := range []struct {
		name        string
		server, gen cpuSet
		want        float64
	}{
		// Unpinned: 2 cores / 267 µs.
		{"unpinned", both, both, 2 / (target + load)},
		// Pinned apart: the target's core binds (1 / 137 µs < 1 / 130 µs).
		{"pinned apart", c0, c1, 1 / target},
		// Pinned together on one core: 1 core / 267 µs.
		{"same core", c0, c0, 1 / (target + load)},
		// Only the target pinned, the generator anywhere: both share two
		// cores (2/267 µs ≈ 7 491/s), but the target's one core binds
		// first (1/137 µs ≈ 7 299/s).
		{"target pinned", c0, both, 1 / target},
		// Overlapping: the generator's core alone holds 1/130 µs ≈ 7 692/s,
		// the two cores they share 2/267 µs binds.
		{"overlapping", both, c1, 2 / (target + load)},
	} {
		got, err := openLoopMax(target, load, c.server, c.gen)
		if err != nil || math.Abs(got-c.want) > 1e-6 {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if got := 2 / (target + load); math.Abs(got-7491) > 1 {
		t.Errorf("2 cores at 267 µs per check: %v, want ≈ 7 491/s", got)
	}
	for _, c := range []struct{ target, load float64 }{{0, load}, {target, 0}, {math.Inf(1), load}, {math.NaN(), load}} {
		if _, err := openLoopMax(c.target, c.load, both, both); err == nil {
			t.Errorf("%v/%v: want an error", c.target, c.load)
		}
	}
	if _, err := openLoopMax(target, load, cpuSet{}, both); err == nil {
		t.Error("no CPUs: want an error")
	}
}

func TestPlanSoakRate(t *testing.T) {
	for _, c := range []struct {
		name                 string
		closed, openMax, pct float64
		basis                string
		wantRate, wantOpen   float64
		wantBasis            string
	}{
		// The lead's quiet box: closed loop 8 760/s, open-loop max ≈ 7 491/s.
		{"open binds", 8760, 7491, 80, basisMin, 5992.8, 7491, "open"},
		{"closed binds", 5000, 7491, 80, basisMin, 4000, 7491, "closed"},
		{"RATE_BASIS=closed", 8760, 0, 80, basisClosed, 7008, 0, "closed"},
		{"CI's 50 %", 8760, 7491, 50, basisMin, 3745.5, 7491, "open"},
	} {
		p, err := planSoakRate(c.closed, c.openMax, c.pct, c.basis)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if math.Abs(p.Rate-c.wantRate) > 1e-6 || p.OpenMaxRPS != c.wantOpen || p.Basis != c.wantBasis || p.ClosedRPS != c.closed {
			t.Errorf("%s: got %+v, want rate %v, open max %v, basis %s", c.name, p, c.wantRate, c.wantOpen, c.wantBasis)
		}
	}
	for _, c := range []struct {
		closed, openMax, pct float64
		basis, want          string
	}{
		{0, 7000, 80, basisMin, "closed-loop capacity 0/s and percent 80 must be positive"},
		{8000, 7000, 0, basisMin, "closed-loop capacity 8000/s and percent 0 must be positive"},
		{8000, 0, 80, basisMin, "open-loop maximum 0/s: want a positive rate"},
		{8000, 7000, 80, "open", `rate basis "open": want min or closed`},
	} {
		_, err := planSoakRate(c.closed, c.openMax, c.pct, c.basis)
		if err == nil || err.Error() != c.want {
			t.Errorf("%+v: got %v, want %s", c, err, c.want)
		}
	}
}

// TestPlanRate runs -plan-rate on result files as the soak writes them.
func TestPlanRate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	closed := write("max.json", `{"label":"max","rps":8760.4,"target_cpu_ms_per_1k_requests":114}`+"\n")
	cal := write("cal.json", `{"label":"calibrate","offered_rps":5256,"target_cpu_ms_per_1k":137,"load_cpu_ms_per_1k":130,"windows":[]}`+"\n")
	noCPU := write("nocpu.json", `{"label":"calibrate","offered_rps":5256,"windows":[]}`+"\n")
	broken := write("broken.json", `{"rps":`)
	for _, c := range []struct {
		name string
		o    planOptions
		want string
	}{
		{"unpinned", planOptions{closedFile: closed, calibrationFile: cal, percent: 80, basis: basisMin, cores: 2}, "5993 8760 7491 open\n"},
		{"pinned apart", planOptions{closedFile: closed, calibrationFile: cal, percent: 80, basis: basisMin, cores: 2, serverCPUs: "0", loadCPUs: "1"}, "5839 8760 7299 open\n"},
		{"closed basis needs no calibration", planOptions{closedFile: closed, percent: 80, basis: basisClosed, cores: 2}, "7008 8760 0 closed\n"},
		{"many cores: closed binds", planOptions{closedFile: closed, calibrationFile: cal, percent: 50, basis: basisMin, cores: 8}, "4380 8760 29963 closed\n"},
	} {
		var out bytes.Buffer
		if err := planRate(&out, c.o); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if out.String() != c.want {
			t.Errorf("%s: got %q, want %q", c.name, out.String(), c.want)
		}
	}
	for _, c := range []struct {
		name string
		o    planOptions
		want string
	}{
		{"no calibration CPU", planOptions{closedFile: closed, calibrationFile: noCPU, percent: 80, basis: basisMin, cores: 2}, "no CPU per check"},
		{"broken JSON", planOptions{closedFile: broken, calibrationFile: cal, percent: 80, basis: basisMin, cores: 2}, "broken.json: unexpected end of JSON input"},
		{"missing calibration", planOptions{closedFile: closed, percent: 80, basis: basisMin, cores: 2}, "a results file is required"},
		{"bad CPU list", planOptions{closedFile: closed, calibrationFile: cal, percent: 80, basis: basisMin, cores: 2, serverCPUs: "zero"}, `-server-cpus: CPU list "zero"`},
		{"bad basis", planOptions{closedFile: closed, calibrationFile: cal, percent: 80, basis: "box", cores: 2}, `rate basis "box"`},
	} {
		err := planRate(&bytes.Buffer{}, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
