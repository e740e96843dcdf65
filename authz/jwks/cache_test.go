package jwks

import (
	"context"
	"crypto"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeJWKS(t *testing.T, path string, pubs ...crypto.PublicKey) {
	t.Helper()
	doc, err := MarshalJWKS(pubs)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func fileConfig(path string) Config {
	return Config{Issuer: "airgapped", File: path, RefreshFloor: time.Minute, RefreshCeiling: time.Hour,
		StaleMaxAge: time.Hour, UnknownKIDInterval: time.Second, FetchTimeout: time.Second}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFileSourceReloadsAndKeepsLastGood: an air-gapped JWKS file is watched;
// a new key appears without restart; a broken file keeps the last good keys
// and is reported.
func TestFileSourceReloadsAndKeepsLastGood(t *testing.T) {
	keys := testRSA()
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, keys[0].Public())
	c, err := New(fileConfig(path), Options{FilePollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	kid0, _ := Thumbprint(keys[0].Public())
	kid1, _ := Thumbprint(keys[1].Public())
	if _, ok := c.Current().Key(kid0); !ok {
		t.Fatal("first key missing")
	}
	first := c.Current()
	k0, _ := first.Key(kid0)

	writeJWKS(t, path, keys[0].Public(), keys[1].Public())
	waitFor(t, "the second key", func() bool { _, ok := c.Current().Key(kid1); return ok })
	if !c.Current().Contains(k0) {
		t.Fatal("an unchanged key lost its identity across a reload")
	}

	if err := os.WriteFile(path, []byte(`{"keys": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken file to be reported", func() bool { return c.Status().LastError != "" })
	st := c.Status()
	if !strings.Contains(st.LastError, "keeping the last good keys") || st.Keys != 2 || !st.Available {
		t.Fatalf("Status = %+v", st)
	}
	if _, ok := c.Current().Key(kid1); !ok {
		t.Fatal("last good keys dropped on a broken file")
	}
}

func TestFileSourceMissingIsNotReady(t *testing.T) {
	c, err := New(fileConfig(filepath.Join(t.TempDir(), "absent.json")), Options{FilePollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := c.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Fatalf("WaitReady = %v, want the missing file named", err)
	}
	if c.Current() != nil {
		t.Fatal("keys served without a successful load")
	}
}

func TestLifetimeClamp(t *testing.T) {
	c, err := New(Config{Issuer: "x", JWKSURL: "https://x/keys", RefreshFloor: 5 * time.Minute, RefreshCeiling: 24 * time.Hour,
		FetchTimeout: time.Second, UnknownKIDInterval: time.Second}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]time.Duration{
		"":                          5 * time.Minute,
		"max-age=86400, public":     24 * time.Hour,
		"public, max-age=3600":      time.Hour,
		"max-age=10":                5 * time.Minute,
		"max-age=31536000":          24 * time.Hour,
		"no-store":                  5 * time.Minute,
		"max-age=3600, no-cache":    5 * time.Minute,
		"max-age=nonsense":          5 * time.Minute,
		"MAX-AGE=7200":              2 * time.Hour,
		"max-age=99999999999999999": 24 * time.Hour,
	}
	for cc, want := range tests {
		if got := c.lifetime(cc); got != want {
			t.Errorf("lifetime(%q) = %s, want %s", cc, got, want)
		}
	}
}

// TestRedirectPolicy: key fetches follow at most three redirects and never
// downgrade from https to http.
func TestRedirectPolicy(t *testing.T) {
	mk := func(raw string) *http.Request {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	https, http1 := mk("https://issuer.example/keys"), mk("http://issuer.example/keys")
	tests := []struct {
		name string
		req  *http.Request
		via  []*http.Request
		want string // "" for allowed
	}{
		{"https to https", https, []*http.Request{https}, ""},
		{"http to https", https, []*http.Request{http1}, ""},
		{"http to http", http1, []*http.Request{http1}, ""},
		{"https to http", http1, []*http.Request{https}, "refusing a redirect from https to http"},
		{"third redirect", https, []*http.Request{https, https, https}, ""},
		{"fourth redirect", https, []*http.Request{https, https, https, https}, "more than 3 redirects"},
	}
	for _, tt := range tests {
		err := checkRedirect(tt.req, tt.via)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: checkRedirect = %v, want %q", tt.name, err, tt.want)
		}
	}
	// The policy is installed on a copy: the caller's client is untouched.
	caller := &http.Client{}
	c, err := New(Config{Issuer: "x", JWKSURL: "https://x/keys", RefreshFloor: time.Minute, RefreshCeiling: time.Hour,
		FetchTimeout: time.Second, UnknownKIDInterval: time.Second}, Options{Client: caller})
	if err != nil {
		t.Fatal(err)
	}
	if caller.CheckRedirect != nil || c.opts.Client.CheckRedirect == nil {
		t.Fatal("redirect policy not installed on a copy of the caller's client")
	}
}
