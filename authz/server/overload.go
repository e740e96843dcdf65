package server

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/ccauthz/ccauthz/policy"
)

// Load shedding. A check that cannot be answered soon is worth less than an
// immediate 503: Envoy (or the gateway) then fails the request at once, and
// ccauthz keeps answering the checks it did admit in the time the caller
// gives them instead of queueing every check until all of them time out.

// DefaultInFlightPerCPU is the default in-flight limit per GOMAXPROCS. A
// check costs 60–140 µs of CPU with its gRPC transport (a cold one up to a
// few hundred µs), so 128 checks a core bound the wait of an admitted check
// to about 20 ms, a tenth of Envoy's usual 250 ms ext_authz timeout. At 32
// a core the limit shed bursts that would have been answered in time: the
// soaks at 80 % of capacity shed 62–102 checks in seconds whose p99 stayed
// under 100 ms (docs/reliability.md "Soak"), while under real overload the
// queue forms in the transport, before the limit sees it, and Envoy's
// circuit breaker is what bounds it (docs/reliability.md "Overload").
const DefaultInFlightPerCPU = 128

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
	// MaxQueueWait: a gRPC check that waited longer than this between the
	// transport reading its HEADERS frame and its handler starting is
	// answered 503 overloaded without evaluation (unless its message is
	// large: then the wait was mostly its upload), and the server counts as
	// congested for the next MaxQueueWait. 0 or negative: off (the
	// default; measured in docs/reliability.md, it does not prevent the
	// collapse at 3× capacity, and on a shared machine a GC pause or a
	// noisy neighbour alone can exceed a tight setting).
	MaxQueueWait time.Duration
	// RefuseStreams: while the in-flight gate is full, or while congested
	// (MaxQueueWait), the gRPC transport refuses new Check streams with
	// RESOURCE_EXHAUSTED before reading their message, the cheapest
	// shedding there is. A refused stream is a gRPC error, not a
	// CheckResponse: Envoy answers it with status_on_error (503 in
	// deploy/envoy) only when failure_mode_allow is false, as every config
	// we ship says; with failure_mode_allow true it would let the request
	// through, hence off by default.
	RefuseStreams bool
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
	shedQueued     = "queued"  // waited over max_queue_wait in the transport
	shedRefused    = "refused" // stream refused by the transport (RefuseStreams)
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

// full reports whether try would refuse now.
func (g *gate) full() bool { return g.max > 0 && g.inFlight.Load() >= g.max }

// overload is the server's shedding state and its metrics.
type overload struct {
	gate         gate
	minDeadline  time.Duration
	maxQueueWait time.Duration // <= 0: off
	refuse       bool
	// congestedUntil (unix nanos of deps.Now) is when the last check that
	// waited over maxQueueWait stops counting: until then new streams are
	// refused when refuse is set.
	congestedUntil atomic.Int64
	shed           map[string]prometheus.Counter
	lastLog        atomic.Int64 // unix nanos of the last "shedding" log line
	unlogged       atomic.Int64 // checks shed since that line
}

func newOverload(o OverloadOptions, reg prometheus.Registerer) (*overload, error) {
	ov := &overload{gate: gate{max: int64(o.MaxInFlight)}, minDeadline: o.MinDeadline,
		maxQueueWait: o.MaxQueueWait, refuse: o.RefuseStreams, shed: map[string]prometheus.Counter{}}
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ccauthz_checks_shed_total",
		Help: "Checks answered 503 without evaluation: at the in-flight limit (overloaded), with a caller deadline too close to be useful (deadline), after waiting over max_queue_wait in the gRPC transport (queued); and Check streams refused with RESOURCE_EXHAUSTED before decoding (refused).",
	}, []string{"reason"})
	for _, r := range []string{shedOverloaded, shedDeadline, shedQueued, shedRefused} {
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
	if at, ok := ctx.Value(arrivalKey{}).(*arrival); ok && ov.maxQueueWait > 0 {
		now := s.deps.Now()
		if waited := now.Sub(at.at); waited > ov.maxQueueWait && mappedSize(c) <= largeCheckBytes {
			ov.congestedUntil.Store(now.Add(ov.maxQueueWait).UnixNano())
			s.shedCheck(c, policy.ReasonOverloaded, shedQueued, "waited "+waited.String()+" in the gRPC transport, over max_queue_wait")
			return
		}
	}
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

// largeCheckBytes: a CheckRequest over this size may have spent its queue
// wait being uploaded, not queued, so it is not shed for the wait. Only
// computed for checks over max_queue_wait.
const largeCheckBytes = 64 << 10

// mappedSize approximates the size of the check's message from what was
// mapped out of it: headers, body, path.
func mappedSize(c *checkState) int {
	n := len(c.req.Body.Data) + len(c.req.Authorization) + len(c.req.RawPath)
	for k, v := range c.req.Input.Headers {
		n += len(k) + len(v)
	}
	return n
}

// checkMethod is the full gRPC method name of ext_authz Check.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// arrivalKey keys the *arrival the tap handle puts in a Check stream's
// context.
type arrivalKey struct{}

// arrival is when the transport read a Check stream's HEADERS frame.
type arrival struct{ at time.Time }

// arrivalCtx carries the arrival without a second allocation for the
// value (context.WithValue would box it).
type arrivalCtx struct {
	context.Context
	arrival arrival
}

func (c *arrivalCtx) Value(key any) any {
	if key == (arrivalKey{}) {
		return &c.arrival
	}
	return c.Context.Value(key)
}

// tapStream is the gRPC InTapHandle. It runs on the connection's reader
// goroutine as each stream's HEADERS frame is read, before the message is
// read or a goroutine is given to the stream, so it must stay cheap: it
// stamps the arrival of a Check (decideAdmitted measures the queue wait
// from it) and, with RefuseStreams, refuses the stream while the server is
// congested or its in-flight gate is full. Other methods (health, the
// ccauthz.v1 API) pass untouched.
func (s *Server) tapStream(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != checkMethod {
		return ctx, nil
	}
	ov := s.overload
	now := s.deps.Now()
	if ov.refuse && (now.UnixNano() < ov.congestedUntil.Load() || ov.gate.full()) {
		ov.shed[shedRefused].Inc()
		return nil, errRefused
	}
	if ov.maxQueueWait <= 0 {
		return ctx, nil
	}
	return &arrivalCtx{Context: ctx, arrival: arrival{at: now}}, nil
}

// errRefused answers a refused Check stream.
var errRefused = status.Error(codes.ResourceExhausted, "ccauthz overloaded: check refused before decoding")
