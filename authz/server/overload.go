package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccauthz/ccauthz/policy"
)

// Load shedding. A check that cannot be answered soon is worth less than an
// immediate 503: Envoy (or the gateway) then fails the request at once, and
// ccauthz keeps answering the checks it did admit in the time the caller
// gives them instead of queueing every check until all of them time out.

// DefaultInFlightPerCPU is the default in-flight limit per GOMAXPROCS. A
// cached check costs about 10 µs of CPU and a cold one a few ms, so 32
// checks a core keep every core busy while bounding the wait of an admitted
// check to a few ms (Little's law at the measured ~10k checks/s on 2 cores).
const DefaultInFlightPerCPU = 32

// DefaultMinDeadline is the default shortest caller deadline still worth
// evaluating: below it the answer cannot reach the caller in time.
const DefaultMinDeadline = time.Millisecond

// OverloadOptions bound the checks evaluated at once.
type OverloadOptions struct {
	// MaxInFlight is the server-wide limit on checks being decided at once,
	// over every protocol; a check over it is answered at once with 503
	// overloaded. Default DefaultInFlightPerCPU × GOMAXPROCS; negative
	// turns the limit off.
	MaxInFlight int
	// MinDeadline: a check whose caller deadline (gRPC grpc-timeout) is
	// closer than this when it starts is answered 503 deadline_exceeded
	// without evaluation. Default DefaultMinDeadline; negative turns the
	// check off (a deadline already passed is still dropped).
	MinDeadline time.Duration
}

func (o *OverloadOptions) defaults() {
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultInFlightPerCPU * runtime.GOMAXPROCS(0)
	}
	if o.MinDeadline == 0 {
		o.MinDeadline = DefaultMinDeadline
	}
}

// Shed reasons (the ccauthz_checks_shed_total label).
const (
	shedOverloaded = "overloaded"
	shedDeadline   = "deadline"
)

// gate is the in-flight limiter: a counter, not a queue. try never blocks.
type gate struct {
	max      int64 // <= 0: unlimited
	inFlight atomic.Int64
}

// try takes a slot and reports whether it got one; every true must be
// paired with a done.
func (g *gate) try() bool {
	if g.max <= 0 {
		g.inFlight.Add(1)
		return true
	}
	if g.inFlight.Add(1) > g.max {
		g.inFlight.Add(-1)
		return false
	}
	return true
}

func (g *gate) done() { g.inFlight.Add(-1) }

// overload is the server's shedding state and its metrics.
type overload struct {
	gate        gate
	minDeadline time.Duration
	shed        map[string]prometheus.Counter
	lastLog     atomic.Int64 // unix nanos of the last "shedding" log line
	unlogged    atomic.Int64 // checks shed since that line
}

func newOverload(o OverloadOptions, reg prometheus.Registerer) (*overload, error) {
	ov := &overload{gate: gate{max: int64(o.MaxInFlight)}, minDeadline: o.MinDeadline, shed: map[string]prometheus.Counter{}}
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ccauthz_checks_shed_total",
		Help: "Checks answered 503 without evaluation: at the in-flight limit (overloaded) or with a caller deadline too close to be useful (deadline).",
	}, []string{"reason"})
	for _, r := range []string{shedOverloaded, shedDeadline} {
		ov.shed[r] = shed.WithLabelValues(r)
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ccauthz_checks_in_flight",
		Help: "Checks being decided now (the quantity overload.max_in_flight bounds).",
	}, func() float64 { return float64(ov.gate.inFlight.Load()) })
	limit := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ccauthz_checks_in_flight_limit",
		Help: "The in-flight limit (overload.max_in_flight); 0 when off.",
	})
	limit.Set(float64(max(o.MaxInFlight, 0)))
	for _, c := range []prometheus.Collector{shed, inFlight, limit} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return ov, nil
}

// decideAdmitted runs decideRequest for a check the server can take now,
// or sheds it: a caller deadline already passed or too close is
// deadline_exceeded, a full gate is overloaded. Both are 503 faults decided
// before any verification or evaluation.
func (s *Server) decideAdmitted(ctx context.Context, c *checkState) {
	ov := s.overload
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left <= 0 || left < ov.minDeadline {
			s.shedCheck(c, policy.ReasonDeadlineExceeded, shedDeadline, "caller deadline too close to evaluate: "+left.String())
			return
		}
	}
	if !ov.gate.try() {
		s.shedCheck(c, policy.ReasonOverloaded, shedOverloaded, "in-flight limit reached")
		return
	}
	defer ov.gate.done()
	s.decideRequest(ctx, c)
}

// shedCheck answers c with a shed fault. The backend is still chosen (a
// map lookup) so the check is counted under it.
func (s *Server) shedCheck(c *checkState, reason policy.Reason, label, why string) {
	if b, ok := s.snap.Load().choose(c.req.Backend, c.req.Input.Host); ok {
		c.backend = b
	}
	c.decision = faultDecision(reason)
	c.fault = why
	c.shed = true
	s.overload.shed[label].Inc()
}

// logShed stands in for the decision log of shed checks: one line a second
// at most, with the count, because logging every shed check would spend
// the CPU shedding is meant to save.
func (s *Server) logShed(c *checkState) {
	ov := s.overload
	ov.unlogged.Add(1)
	now := s.deps.Now().UnixNano()
	last := ov.lastLog.Load()
	if now-last < int64(time.Second) || !ov.lastLog.CompareAndSwap(last, now) {
		return
	}
	n := ov.unlogged.Swap(0)
	s.deps.Logger.Warn("shedding checks", "shed_since_last_line", n, "reason", string(c.decision.Reason),
		"detail", c.fault, "in_flight", ov.gate.inFlight.Load(), "max_in_flight", ov.gate.max)
}
