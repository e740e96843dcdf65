package token

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRotationPickedUpOnFirstUnknownKid(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	old := mint(t, keys[0], f.srv.URL, nil)
	if r := v.Verify(t.Context(), bearer(old), aud); r.Status != StatusValid {
		t.Fatalf("old key: %s/%s", r.Status, r.Reason)
	}
	before := f.fetch.Load()

	// The issuer adds a key and signs with it: the first token naming the
	// new kid triggers one refetch and verifies.
	f.setKeys(keys[0], keys[1])
	if r := v.Verify(t.Context(), bearer(mint(t, keys[1], f.srv.URL, nil)), aud); r.Status != StatusValid {
		t.Fatalf("new key: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	if got := f.fetch.Load() - before; got != 1 {
		t.Fatalf("%d JWKS fetches for one new kid, want 1", got)
	}
	// The old token is still cached and valid while its key is published.
	if r := v.Verify(t.Context(), bearer(old), aud); r.Status != StatusValid {
		t.Fatalf("old token after adding a key: %s/%s", r.Status, r.Reason)
	}
}

func TestCachedTokenDroppedWhenItsKeyIsRotatedAway(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	cfg := f.config("gitlab_com")
	cfg.Keys.UnknownKIDInterval = time.Second
	v := startVerifier(t, []IssuerConfig{cfg}, Options{})
	old := mint(t, keys[0], f.srv.URL, nil)
	if r := v.Verify(t.Context(), bearer(old), aud); r.Status != StatusValid {
		t.Fatalf("old key: %s/%s", r.Status, r.Reason)
	}
	// Trim: only the new key is published; a token with the new kid
	// refetches, and the cached token of the removed key stops verifying.
	f.setKeys(keys[1])
	if r := v.Verify(t.Context(), bearer(mint(t, keys[1], f.srv.URL, nil)), aud); r.Status != StatusValid {
		t.Fatalf("new key: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	if r := v.Verify(t.Context(), bearer(old), aud); r.Status != StatusInvalid || r.Reason != ReasonUnknownKey {
		t.Fatalf("token of a removed key: %s/%s, want invalid/unknown_key", r.Status, r.Reason)
	}
	if st := v.Stats(); st.Entries != 1 {
		t.Fatalf("cache holds %d entries, want only the new token", st.Entries)
	}
}

func TestRandomKidFloodIsBounded(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	before := f.fetch.Load()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tok := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) { h["kid"] = fmt.Sprintf("random-%d-%d", w, i) })
				if r := v.Verify(t.Context(), bearer(tok), aud); r.Reason != ReasonUnknownKey {
					t.Errorf("random kid: %s/%s, want unknown_key", r.Status, r.Reason)
				}
			}
		})
	}
	wg.Wait()
	if got := f.fetch.Load() - before; got != 1 {
		t.Fatalf("400 random kids caused %d JWKS fetches, want exactly 1 per unknown_kid_interval", got)
	}
	if st := v.Status()[0]; st.UnknownKIDFetches != 1 {
		t.Fatalf("Status.UnknownKIDFetches = %d, want 1", st.UnknownKIDFetches)
	}
}

func TestIssuerDownServesCachedKeysThenReportsOutage(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	f.set(func(f *fakeIssuer) { f.maxAge = 1 }) // refresh every second (the floor)
	cfg := f.config("gitlab_com")
	cfg.Keys.RefreshFloor = time.Second
	cfg.Keys.FetchTimeout = time.Second
	cfg.Keys.StaleMaxAge = time.Hour
	clk := &clock{}
	v := startVerifier(t, []IssuerConfig{cfg}, Options{Now: clk.Now, CacheEntries: -1})
	f.set(func(f *fakeIssuer) { f.status = http.StatusServiceUnavailable })

	// Wait for a failed refresh to be recorded.
	deadline := time.Now().Add(5 * time.Second)
	for v.Status()[0].ConsecutiveFailures == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no refresh failure recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := v.Status()[0]
	if !st.Available || !strings.Contains(st.LastError, "HTTP status 503") {
		t.Fatalf("Status = %+v, want available keys and the 503 reported", st)
	}
	if r := v.Verify(t.Context(), bearer(mint(t, keys[0], f.srv.URL, nil)), aud); r.Status != StatusValid {
		t.Fatalf("during the outage: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	// A kid the last good keys lack cannot be confirmed unknown while the
	// issuer is down: that is the outage too, not the caller's fault.
	if r := v.Verify(t.Context(), bearer(mint(t, keys[1], f.srv.URL, nil)), aud); r.Status != StatusUnavailable || !strings.Contains(r.Message, "503") {
		t.Fatalf("new kid during the outage: %s/%s (%s), want unavailable", r.Status, r.Reason, r.Message)
	}
	// Past stale_max_age the keys are no longer served: an outage, not the
	// caller's fault.
	clk.Advance(2 * time.Hour)
	r := v.Verify(t.Context(), bearer(mint(t, keys[0], f.srv.URL, func(h, c map[string]any) {
		c["exp"] = clk.Now().Add(time.Hour).Unix()
		c["iat"], c["nbf"] = clk.Now().Unix(), clk.Now().Unix()
	})), aud)
	if r.Status != StatusUnavailable || r.Reason != ReasonKeysUnavailable {
		t.Fatalf("past stale_max_age: %s/%s, want unavailable/keys_unavailable", r.Status, r.Reason)
	}
	if st := v.Status()[0]; st.Available || !st.Stale {
		t.Fatalf("Status = %+v, want unavailable and stale", st)
	}
}

func TestIssuerDownFromTheStart(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	f.set(func(f *fakeIssuer) { f.status = http.StatusBadGateway })
	v, err := NewVerifier([]IssuerConfig{f.config("gitlab_com")}, Options{RetryMin: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = v.WaitReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "HTTP status 502") || !strings.Contains(err.Error(), "gitlab_com") {
		t.Fatalf("WaitReady = %v, want the 502 of gitlab_com", err)
	}
	if r := v.Verify(t.Context(), bearer(mint(t, keys[0], f.srv.URL, nil)), aud); r.Status != StatusUnavailable || r.Reason != ReasonKeysUnavailable {
		t.Fatalf("Verify = %s/%s, want unavailable/keys_unavailable", r.Status, r.Reason)
	}
}

func TestSlowIssuerTimesOut(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	f.set(func(f *fakeIssuer) { f.delay = time.Minute })
	cfg := f.config("gitlab_com")
	cfg.Keys.FetchTimeout = 200 * time.Millisecond
	v, err := NewVerifier([]IssuerConfig{cfg}, Options{RetryMin: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Start(t.Context())
	deadline := time.Now().Add(3 * time.Second)
	for v.Status()[0].ConsecutiveFailures == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a fetch with a 200ms timeout did not fail within 3s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := v.Status()[0]; !strings.Contains(st.LastError, "no answer within 200ms") || st.Ready {
		t.Fatalf("Status = %+v, want a timeout error and not ready", st)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	g := newFakeIssuer(t, keys[1])
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	base := runtime.NumGoroutine()
	for range 3 {
		v, err := NewVerifier([]IssuerConfig{f.config("gitlab_com"), g.config("customers_dot")}, Options{HTTPClient: client})
		if err != nil {
			t.Fatal(err)
		}
		v.Start(t.Context())
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		if err := v.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		// An unknown kid starts a refetch goroutine too.
		v.Verify(t.Context(), bearer(mint(t, keys[2], f.srv.URL, nil)), aud)
		v.Close()
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadDiscoveryDocumentIsReported(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"x"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	v, err := NewVerifier([]IssuerConfig{{Name: "self_managed", Issuer: srv.URL,
		DiscoveryURL: srv.URL + "/.well-known/openid-configuration"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := v.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "has no jwks_uri") {
		t.Fatalf("WaitReady = %v, want the missing jwks_uri reported", err)
	}
}
