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
