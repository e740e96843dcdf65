package server

import (
	"context"
	"sync"
	"testing"
	"time"
)

// manualClock is a settable server clock.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countLines counts decision lines and returns the suppressed counts of
// the summary lines.
func countLines(t *testing.T, h *harness) (decisions int, summaries []float64) {
	t.Helper()
	for _, l := range h.logs.lines(t) {
		switch l["msg"] {
		case "decision":
			decisions++
		case "decision log lines suppressed":
			summaries = append(summaries, l["suppressed"].(float64))
		}
	}
	return decisions, summaries
}

// TestDenialLogBound: past max_denials_per_second the denial lines of a
// second are dropped, counted, and summed up by the first line of a later
// second (or the ticker's flush); allows are sampled as before.
func TestDenialLogBound(t *testing.T) {
	h := newHarness(t, Options{MaxDenialLogLines: 3, AllowLogSampling: 1}, aiGateway())
	clock := &manualClock{t: time.Unix(1_800_000_000, 0)}
	h.srv.deps.Now = clock.Now
	deny := func(n int) {
		for range n {
			resp, _ := h.srv.Check(context.Background(), request("/denied", "Bearer garbage", map[string]string{"backend": "ai_gateway"}, ""))
			if resp.GetDeniedResponse() == nil {
				t.Fatalf("not denied: %v", resp)
			}
		}
	}
	deny(10)
	if got, sums := countLines(t, h); got != 3 || len(sums) != 0 {
		t.Fatalf("after 10 denials in one second: %d decision lines, summaries %v; want 3 and none", got, sums)
	}
	if got := counterValue(t, h.srv.denialLog.dropped); got != 7 {
		t.Errorf("ccauthz_decision_log_dropped_total = %v, want 7", got)
	}
	// An allow is not bound by the denial budget.
	if resp, _ := h.srv.Check(context.Background(), request("/allowed", "Bearer good-i", map[string]string{"backend": "ai_gateway"}, "")); resp.GetOkResponse() == nil {
		t.Fatalf("not allowed: %v", resp)
	}
	if got, _ := countLines(t, h); got != 4 {
		t.Fatalf("the sampled allow was not logged: %d decision lines", got)
	}
	clock.Add(time.Second)
	deny(1)
	got, sums := countLines(t, h)
	if got != 5 || len(sums) != 1 || sums[0] != 7 {
		t.Fatalf("next second: %d decision lines, summaries %v; want 5 and [7]", got, sums)
	}
	deny(5) // 3 more lines in this second, 3 suppressed
	if n := h.srv.denialLog.flush(); n != 3 {
		t.Errorf("flush = %d, want 3", n)
	}
	if n := h.srv.denialLog.flush(); n != 0 {
		t.Errorf("second flush = %d, want 0 (reported once)", n)
	}
	if got := counterValue(t, h.srv.denialLog.dropped); got != 10 {
		t.Errorf("ccauthz_decision_log_dropped_total = %v, want 10", got)
	}
}

// TestDenialLogUnbounded: a negative bound writes every denial.
func TestDenialLogUnbounded(t *testing.T) {
	h := newHarness(t, Options{MaxDenialLogLines: -1}, aiGateway())
	h.srv.deps.Now = (&manualClock{t: time.Unix(1_800_000_000, 0)}).Now
	for range 250 {
		h.srv.Check(context.Background(), request("/denied", "", map[string]string{"backend": "ai_gateway"}, ""))
	}
	if got, sums := countLines(t, h); got != 250 || len(sums) != 0 {
		t.Errorf("%d decision lines, summaries %v; want 250 and none", got, sums)
	}
}
