package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCheckDeadline: Err reports the deadline from the clock, without a
// timer and without waiting for one to fire; Done closes at the deadline,
// on the parent's cancellation, and at once after stop.
func TestCheckDeadline(t *testing.T) {
	d := newCheckDeadline(context.Background(), time.Now().Add(30*time.Millisecond))
	if err := d.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	if dl, ok := d.Deadline(); !ok || dl != d.deadline {
		t.Errorf("Deadline = %v %v", dl, ok)
	}
	time.Sleep(40 * time.Millisecond)
	if err := d.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err past the deadline = %v, want DeadlineExceeded (no timer needed)", err)
	}
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close past the deadline")
	}
	d.stop()

	parent, cancel := context.WithCancel(context.Background())
	d = newCheckDeadline(parent, time.Now().Add(time.Hour))
	done := d.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done did not close on the parent's cancellation")
	}
	if !errors.Is(d.Err(), context.Canceled) {
		t.Errorf("Err = %v, want Canceled", d.Err())
	}
	d.stop()

	d = newCheckDeadline(context.Background(), time.Now().Add(time.Hour))
	d.stop()
	select {
	case <-d.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done after stop must not block")
	}
}

// TestCheckDeadlineDerivedStop: a context derived from a check's deadline
// that outlives the check sees Done close with Err set when stop closes it.
// Err stayed nil then, and the context package's watcher panicked the
// process ("missing cancel error").
func TestCheckDeadlineDerivedStop(t *testing.T) {
	d := newCheckDeadline(context.Background(), time.Now().Add(time.Hour))
	child, cancel := context.WithCancel(d)
	defer cancel()
	fired := make(chan struct{})
	stopAfter := context.AfterFunc(d, func() { close(fired) })
	defer stopAfter()
	d.stop()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the derived context was not cancelled by stop")
	}
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("context.AfterFunc did not run after stop")
	}
	if !errors.Is(d.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("Err after stop = %v, child %v; want Canceled", d.Err(), child.Err())
	}
}
