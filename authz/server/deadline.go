package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// checkDeadline is a check's deadline as a context that needs no timer
// until something waits on it. A cached check only ever asks Err (decide
// does, after each step), which compares the clock with the deadline; a
// verifier fetching keys or a policy evaluating calls Done, which starts
// the timer then. context.WithTimeout armed and stopped a runtime timer and
// made four allocations on every check, for a deadline that a cached check
// never waits on; and its Err stayed nil until the timer's goroutine ran,
// which on a loaded machine let a result that arrived after the deadline
// through.
type checkDeadline struct {
	context.Context // the parent
	deadline        time.Time

	mu      sync.Mutex
	timed   context.Context // started by the first Done
	cancel  context.CancelFunc
	stopped bool
	// over mirrors stopped for Err without the lock: once stop closed
	// Done, Err must not be nil (the context contract; a context derived
	// from this one, context.AfterFunc's included, panics the process
	// with "missing cancel error" when its parent's Done closes while
	// Err is nil).
	over atomic.Bool
}

func newCheckDeadline(parent context.Context, deadline time.Time) *checkDeadline {
	return &checkDeadline{Context: parent, deadline: deadline}
}

func (d *checkDeadline) Deadline() (time.Time, bool) { return d.deadline, true }

func (d *checkDeadline) Err() error {
	if err := d.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(d.deadline) {
		return context.DeadlineExceeded
	}
	if d.over.Load() {
		return context.Canceled
	}
	return nil
}

func (d *checkDeadline) Done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timed == nil {
		d.timed, d.cancel = context.WithDeadline(d.Context, d.deadline)
		if d.stopped {
			d.cancel() // the check is over: whoever waits now must not wait
		}
	}
	return d.timed.Done()
}

// stop releases the timer, if Done started one.
func (d *checkDeadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	d.over.Store(true) // before Done closes
	if d.cancel != nil {
		d.cancel()
	}
}
