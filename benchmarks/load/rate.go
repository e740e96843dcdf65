package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The soak's rate (-plan-rate, benchmarks/soak.sh). A closed loop (32 in
// flight, many checks per syscall) costs both sides less CPU per check than
// the open loop the soak runs (a fixed rate, a few in flight): LOAD_PERCENT
// of the closed-loop capacity can keep a 2-core box nearly saturated in the
// open loop, and then any stall queues up to Envoy's deadline. So the soak
// runs at LOAD_PERCENT of the smaller of the closed-loop capacity and the
// open-loop maximum: the rate at which the CPU per check measured in a
// short open-loop calibration fills the cores ccauthz and the generator
// may run on (docs/reliability.md "Soak").

// Rate bases (RATE_BASIS).
const (
	basisMin    = "min"    // LOAD_PERCENT of min(closed-loop capacity, open-loop maximum)
	basisClosed = "closed" // LOAD_PERCENT of the closed-loop capacity (before 2026-12-02)
)

// cpuSet is a set of CPU numbers.
type cpuSet map[int]bool

// parseCPUList parses a taskset/cpuset list such as "0", "0-3" or
// "0,2-3". An empty list is an empty set.
func parseCPUList(s string) (cpuSet, error) {
	set := cpuSet{}
	if strings.TrimSpace(s) == "" {
		return set, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b-a >= 4096 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number or range like 0-3", s, part)
		}
		for c := a; c <= b; c++ {
			set[c] = true
		}
	}
	return set, nil
}

// allCPUs is the set 0..n-1.
func allCPUs(n int) cpuSet {
	set := cpuSet{}
	for c := range n {
		set[c] = true
	}
	return set
}

func union(a, b cpuSet) cpuSet {
	u := cpuSet{}
	for c := range a {
		u[c] = true
	}
	for c := range b {
		u[c] = true
	}
	return u
}

// openLoopMax is the largest rate (checks/s) at which a target costing
// target CPU seconds per check on the CPUs in server, and a generator
// costing load CPU seconds per check on those in gen, fit their CPUs: each
// side within its own CPUs, and both within the CPUs they run on together.
// Unpinned, both sets are every CPU and this is cores / (target + load);
// pinned to disjoint sets it is the smaller of each side's cores / its own
// CPU per check.
func openLoopMax(target, load float64, server, gen cpuSet) (float64, error) {
	if !(target > 0) || !(load > 0) || math.IsInf(target, 0) || math.IsInf(load, 0) {
		return 0, fmt.Errorf("CPU per check must be positive: target %g s, generator %g s", target, load)
	}
	if len(server) == 0 || len(gen) == 0 {
		return 0, errors.New("no CPUs to run on")
	}
	m := float64(len(server)) / target
	m = min(m, float64(len(gen))/load)
	m = min(m, float64(len(union(server, gen)))/(target+load))
	return m, nil
}

// ratePlan is the soak's rate and what set it.
type ratePlan struct {
	ClosedRPS  float64 // the closed-loop capacity
	OpenMaxRPS float64 // the open-loop maximum (0 with basis closed)
	Basis      string  // "closed" or "open": which figure LOAD_PERCENT was taken of
	Rate       float64 // checks/s
}

// planSoakRate takes percent of the closed-loop capacity (basis closed) or
// of the smaller of it and openMax (basis min).
func planSoakRate(closed, openMax, percent float64, basis string) (ratePlan, error) {
	if !(closed > 0) || !(percent > 0) {
		return ratePlan{}, fmt.Errorf("closed-loop capacity %g/s and percent %g must be positive", closed, percent)
	}
	p := ratePlan{ClosedRPS: closed, Basis: "closed", Rate: closed * percent / 100}
	switch basis {
	case basisClosed:
		return p, nil
	case basisMin:
		if !(openMax > 0) {
			return ratePlan{}, fmt.Errorf("open-loop maximum %g/s: want a positive rate", openMax)
		}
		p.OpenMaxRPS = openMax
		if openMax < closed {
			p.Basis, p.Rate = "open", openMax*percent/100
		}
		return p, nil
	}
	return ratePlan{}, fmt.Errorf("rate basis %q: want %s or %s", basis, basisMin, basisClosed)
}

// planOptions are the -plan-rate flags.
type planOptions struct {
	closedFile, calibrationFile string
	percent                     float64
	basis                       string
	cores                       int
	serverCPUs, loadCPUs        string
}

// planRate reads the closed-loop result (-json of a closed-loop run) and,
// for basis min, the calibration (-json of an open-loop run with
// -target-pid), and prints "RATE CLOSED OPEN_MAX BASIS" on one line: the
// soak's rate (rounded), the closed-loop capacity, the open-loop maximum
// (0 with basis closed) and "closed" or "open".
func planRate(w io.Writer, o planOptions) error {
	var closed result
	if err := readJSON(o.closedFile, &closed); err != nil {
		return err
	}
	var openMax float64
	if o.basis == basisMin {
		var cal openResult
		if err := readJSON(o.calibrationFile, &cal); err != nil {
			return err
		}
		if cal.TargetCPUPerK <= 0 || cal.LoadCPUPerK <= 0 {
			return fmt.Errorf("%s: no CPU per check (target %g, generator %g ms per 1k checks; run it with -target-pid)",
				o.calibrationFile, cal.TargetCPUPerK, cal.LoadCPUPerK)
		}
		all := allCPUs(o.cores)
		server, err := parseCPUList(o.serverCPUs)
		if err != nil {
			return fmt.Errorf("-server-cpus: %w", err)
		}
		gen, err := parseCPUList(o.loadCPUs)
		if err != nil {
			return fmt.Errorf("-load-cpus: %w", err)
		}
		if len(server) == 0 {
			server = all
		}
		if len(gen) == 0 {
			gen = all
		}
		// ms per 1 000 checks is µs per check.
		if openMax, err = openLoopMax(cal.TargetCPUPerK/1e6, cal.LoadCPUPerK/1e6, server, gen); err != nil {
			return fmt.Errorf("%s: %w", o.calibrationFile, err)
		}
	}
	p, err := planSoakRate(closed.RPS, openMax, o.percent, o.basis)
	if err != nil {
		return fmt.Errorf("%s: %w", o.closedFile, err)
	}
	_, err = fmt.Fprintf(w, "%.0f %.0f %.0f %s\n", p.Rate, p.ClosedRPS, p.OpenMaxRPS, p.Basis)
	return err
}

// readJSON decodes the one JSON object in path into v.
func readJSON(path string, v any) error {
	if path == "" {
		return errors.New("a results file is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
