package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadsCoalesce: reloads requested while one builds are answered by
// one more build, not one each.
func TestReloadsCoalesce(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	var builds atomic.Int32
	started, release := make(chan struct{}, 10), make(chan struct{})
	backends := []*Backend{aiGateway()}
	backends[0].Decider = &fakeDecider{revision: "rev-2"}
	h.build = func(context.Context) (*Snapshot, error) {
		builds.Add(1)
		started <- struct{}{}
		<-release
		return NewSnapshot(backends, time.Now())
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = h.srv.Reload(ctx, "first") }()
	<-started
	const waiting = 5
	for range waiting {
		wg.Add(1)
		go func() { defer wg.Done(); _ = h.srv.Reload(ctx, "burst") }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.reloadReqs.Load() < 1+waiting {
		if time.Now().After(deadline) {
			t.Fatal("reload requests never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := builds.Load(); got != 2 {
		t.Errorf("%d builds for 1 reload and a burst of %d, want 2", got, waiting)
	}
	// A reload after the burst builds again: it is not answered by an old one.
	release = make(chan struct{})
	close(release)
	if err := h.srv.Reload(ctx, "later"); err != nil {
		t.Fatal(err)
	}
	if got := builds.Load(); got != 3 {
		t.Errorf("a later reload must build: %d builds", got)
	}
}

// TestReloadUnchangedKeepsSnapshot: a builder that returns the serving
// snapshot (inputs unchanged) swaps nothing and counts the reload as
// unchanged.
func TestReloadUnchangedKeepsSnapshot(t *testing.T) {
	h := newHarness(t, Options{}, aiGateway())
	cur := h.srv.Snapshot()
	h.build = func(context.Context) (*Snapshot, error) { return cur, nil }
	if err := h.srv.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if h.srv.Snapshot() != cur {
		t.Fatal("snapshot swapped")
	}
	families, err := h.srv.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "ccauthz_reloads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == "unchanged" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Error("ccauthz_reloads_total{result=\"unchanged\"} is not 1")
	}
}
