package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// denialLog bounds the denial lines of the decision log to max a second.
// A client can make ccauthz deny as fast as it can send (garbage tokens
// are the cheapest checks there are), and one JSON line per denial would
// make the log, not the check, the cost of each: the adversarial mix spent
// more on encoding and writing lines than on deciding. Lines past the bound
// are counted (ccauthz_decision_log_dropped_total) and summed up in one
// warning a second, so an operator sees that lines are missing and how
// many. The window is the wall-clock second of the check's end; it is
// lock-free (two atomics a line).
type denialLog struct {
	max        int64 // <= 0: no bound
	window     atomic.Int64
	used       atomic.Int64
	suppressed atomic.Int64 // dropped since the last summary line
	dropped    prometheus.Counter
}

func newDenialLog(max int, reg prometheus.Registerer) (*denialLog, error) {
	l := &denialLog{
		max: int64(max),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ccauthz_decision_log_dropped_total",
			Help: "Decision log lines (denials and faults) not written because logging.max_denials_per_second was reached.",
		}),
	}
	if err := reg.Register(l.dropped); err != nil {
		return nil, err
	}
	return l, nil
}

// admit reports whether a denial line ending at now may be written, and
// how many lines were suppressed in earlier windows and not yet reported
// (the caller writes the summary line when that is not 0).
func (l *denialLog) admit(now time.Time) (ok bool, report int64) {
	if l.max <= 0 {
		return true, 0
	}
	sec := now.Unix()
	if w := l.window.Load(); w != sec && l.window.CompareAndSwap(w, sec) {
		// The first line of a new second resets the budget and reports
		// what the past ones suppressed. A line racing the reset may be
		// counted in either second; the bound is approximate by that much.
		l.used.Store(0)
		report = l.suppressed.Swap(0)
	}
	if l.used.Add(1) <= l.max {
		return true, report
	}
	l.suppressed.Add(1)
	l.dropped.Inc()
	return false, report
}

// flush returns the suppressed lines not yet reported (the readiness ticker
// calls it, so a burst that ends is still summed up without another denial).
func (l *denialLog) flush() int64 {
	if l.max <= 0 {
		return 0
	}
	return l.suppressed.Swap(0)
}
