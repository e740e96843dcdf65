package token

import (
	"bufio"
	"crypto"
	"crypto/rsa"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// chaosMode is one way an issuer misbehaves.
type chaosMode string

const (
	chaosOK        chaosMode = "ok"
	chaosSlow      chaosMode = "slow beyond fetch_timeout"
	chaos500       chaosMode = "HTTP 500"
	chaosGarbage   chaosMode = "garbage JSON"
	chaosTruncated chaosMode = "truncated body"
	chaosHuge      chaosMode = "50 MB body"
	chaosEmpty     chaosMode = "empty key set"
	chaosElsewhere chaosMode = "discovery points elsewhere"
	chaosRedirect  chaosMode = "redirect loop"
	chaosReset     chaosMode = "connection reset"
)

// chaosIssuer is a real HTTP issuer on 127.0.0.1 whose discovery document
// and JWKS misbehave in the current mode.
type chaosIssuer struct {
	srv     *httptest.Server
	keys    []*rsa.PrivateKey
	mode    atomic.Value // chaosMode
	fetches atomic.Int64 // requests for discovery or JWKS
	stop    chan struct{}
}

func newChaosIssuer(t *testing.T, keys ...*rsa.PrivateKey) *chaosIssuer {
	t.Helper()
	c := &chaosIssuer{keys: keys, stop: make(chan struct{})}
	c.mode.Store(chaosOK)
	// An address on loopback where nothing listens, for the discovery
	// document that points elsewhere.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := "http://" + l.Addr().String() + "/keys"
	l.Close()
	good, err := jwks.MarshalJWKS([]crypto.PublicKey{keys[0].Public()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		c.fetches.Add(1)
		jwksURI := c.srv.URL + "/keys"
		switch c.mode.Load().(chaosMode) {
		case chaosElsewhere:
			jwksURI = nowhere
		case chaosRedirect:
			http.Redirect(w, r, "/.well-known/openid-configuration", http.StatusFound)
			return
		}
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, c.srv.URL, jwksURI)
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		c.fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=1")
		switch c.mode.Load().(chaosMode) {
		case chaosSlow:
			select {
			case <-time.After(time.Minute):
			case <-r.Context().Done():
			case <-c.stop:
			}
			return
		case chaos500:
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		case chaosGarbage:
			_, _ = w.Write([]byte(`{"keys": [{"kty": "RSA", "n": 12}, oops`))
			return
		case chaosTruncated:
			w.Header().Set("Content-Length", fmt.Sprint(len(good)))
			_, _ = w.Write(good[:len(good)/2])
			return // the server closes the connection short of Content-Length
		case chaosHuge:
			bw := bufio.NewWriter(w)
			_, _ = bw.WriteString(`{"keys": [], "padding": "`)
			chunk := []byte(strings.Repeat("x", 64<<10))
			for written := 0; written < 50<<20; written += len(chunk) {
				if _, err := bw.Write(chunk); err != nil {
					return
				}
			}
			_, _ = bw.WriteString(`"}`)
			_ = bw.Flush()
			return
		case chaosEmpty:
			_, _ = w.Write([]byte(`{"keys": []}`))
			return
		case chaosReset:
			hj, ok := w.(http.Hijacker)
			if !ok {
				panic("no hijacker")
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST instead of FIN
				}
				conn.Close()
			}
			return
		}
		_, _ = w.Write(good)
	})
	c.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(c.stop)
		c.srv.Close()
	})
	return c
}

// chaosFigure is what one phase measured.
type chaosFigure struct {
	mode                      chaosMode
	checks, falseDenials      int
	unknownKidUnavailable     int
	fetchesPerMinute          float64
	available, ready          bool
	allocatedMiB              float64
	lastError                 string
	consecutiveFailuresAtExit int
}

// TestJWKSChaos runs a verifier against an issuer that misbehaves in every
// way in turn, after one good fetch. Tokens signed by the known good key
// must verify throughout (the last good keys are served while within
// stale_max_age: 0 false denials); a token with a kid the last good keys
// lack is an outage (unavailable), never "invalid"; fetches stay bounded by
// the retry backoff; a 50 MB body costs no more than the 1 MiB read limit;
// readiness never drops. CCAUTHZ_CHAOS_PHASE lengthens each phase (default
// 1.5s) for a longer campaign; the figures are logged (go test -v).
func TestJWKSChaos(t *testing.T) {
	phase := 1500 * time.Millisecond
	if s := os.Getenv("CCAUTHZ_CHAOS_PHASE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CCAUTHZ_CHAOS_PHASE: %v", err)
		}
		phase = d
	}
	keys := testKeys()
	iss := newChaosIssuer(t, keys[0])
	cfg := IssuerConfig{
		Name: "gitlab_com", Issuer: iss.srv.URL,
		DiscoveryURL: iss.srv.URL + "/.well-known/openid-configuration",
		Keys: KeysConfig{RefreshFloor: time.Second, RefreshCeiling: time.Hour, StaleMaxAge: time.Hour,
			UnknownKIDInterval: time.Hour, FetchTimeout: 300 * time.Millisecond},
	}
	v := startVerifier(t, []IssuerConfig{cfg}, Options{CacheEntries: -1, RetryMin: 50 * time.Millisecond})

	modes := []chaosMode{chaosSlow, chaos500, chaosGarbage, chaosTruncated, chaosHuge, chaosEmpty,
		chaosElsewhere, chaosRedirect, chaosReset, chaosOK}
	var figures []chaosFigure
	for _, mode := range modes {
		iss.mode.Store(mode)
		before := iss.fetches.Load()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		f := chaosFigure{mode: mode, available: true, ready: true}
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < phase {
					r := v.Verify(t.Context(), bearer(mint(t, keys[0], iss.srv.URL, nil)), aud)
					st := v.Status()[0]
					mu.Lock()
					f.checks++
					if r.Status != StatusValid {
						f.falseDenials++
						t.Errorf("%s: a token of the known good key was %s/%s (%s)", mode, r.Status, r.Reason, r.Message)
					}
					f.available = f.available && st.Available
					f.ready = f.ready && st.Ready
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		if mode != chaosOK {
			// A kid the last good keys lack, while the issuer misbehaves:
			// an outage, not the caller's fault. (unknown_kid_interval is
			// an hour, so only the first of these may refetch at all.)
			r := v.Verify(t.Context(), bearer(mint(t, keys[1], iss.srv.URL, nil)), aud)
			if r.Status == StatusUnavailable {
				f.unknownKidUnavailable++
			} else if v.Status()[0].ConsecutiveFailures > 0 {
				t.Errorf("%s: unknown kid during the outage: %s/%s, want unavailable", mode, r.Status, r.Reason)
			}
		}
		elapsed := time.Since(start)
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		f.allocatedMiB = float64(ms1.TotalAlloc-ms0.TotalAlloc) / (1 << 20)
		f.fetchesPerMinute = float64(iss.fetches.Load()-before) / elapsed.Minutes()
		st := v.Status()[0]
		f.lastError, f.consecutiveFailuresAtExit = st.LastError, st.ConsecutiveFailures
		figures = append(figures, f)

		if !f.available || !f.ready {
			t.Errorf("%s: readiness dropped (available %v, ready %v) within stale_max_age", mode, f.available, f.ready)
		}
		if mode != chaosOK && st.ConsecutiveFailures == 0 {
			t.Errorf("%s: no failed refresh recorded in %s; the mode was not exercised", mode, elapsed)
		}
		// Backoff from 50ms doubling to the 1s floor: at most ~6 + one a
		// second attempts a phase, each at most two requests (discovery and
		// JWKS); the redirect loop follows at most 10 redirects an attempt.
		limit := 2 * (6 + elapsed.Seconds() + 1)
		if mode == chaosRedirect {
			limit *= 11
		}
		if got := float64(iss.fetches.Load() - before); got > limit {
			t.Errorf("%s: %v requests to the issuer in %s, more than the backoff allows (%v)", mode, got, elapsed, limit)
		}
	}
	if st := v.Status()[0]; st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Errorf("after recovery: %+v, want a clean status", st)
	}
	t.Logf("%-28s %7s %6s %11s %9s %9s  %s", "mode", "checks", "false", "fetches/min", "alloc MiB", "available", "last error")
	for _, f := range figures {
		t.Logf("%-28s %7d %6d %11.0f %9.1f %9v  %.70s", f.mode, f.checks, f.falseDenials, f.fetchesPerMinute, f.allocatedMiB, f.available, f.lastError)
	}
}
