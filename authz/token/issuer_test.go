package token

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// testKeys generates RSA keys once per test binary: 2048-bit generation is
// slow and every test needs a few.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// fakeIssuer is a real HTTP issuer on 127.0.0.1 serving an OIDC discovery
// document and a JWKS that tests rotate, break and slow down.
type fakeIssuer struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []crypto.PublicKey
	status int           // JWKS response status (200 by default)
	delay  time.Duration // delay before answering the JWKS
	maxAge int
	fetch  atomic.Int64 // JWKS requests
	stop   chan struct{}
}

func newFakeIssuer(t testing.TB, keys ...*rsa.PrivateKey) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{t: t, status: http.StatusOK, maxAge: 86400, stop: make(chan struct{})}
	f.setKeys(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, f.srv.URL, f.srv.URL+"/oauth/discovery/keys")
	})
	mux.HandleFunc("GET /oauth/discovery/keys", func(w http.ResponseWriter, r *http.Request) {
		f.fetch.Add(1)
		f.mu.Lock()
		status, delay, maxAge := f.status, f.delay, f.maxAge
		pubs := append([]crypto.PublicKey(nil), f.keys...)
		f.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-f.stop:
				return
			case <-r.Context().Done():
				return
			}
		}
		if status != http.StatusOK {
			http.Error(w, "issuer is down", status)
			return
		}
		doc, err := jwks.MarshalJWKS(pubs)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d, public, must-revalidate, no-transform", maxAge))
		_, _ = w.Write(doc)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(f.stop)
		f.srv.Close()
	})
	return f
}

func (f *fakeIssuer) setKeys(keys ...*rsa.PrivateKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = f.keys[:0]
	for _, k := range keys {
		f.keys = append(f.keys, k.Public())
	}
}

func (f *fakeIssuer) set(fn func(f *fakeIssuer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIssuer) config(name string) IssuerConfig {
	return IssuerConfig{
		Name: name, Issuer: f.srv.URL,
		DiscoveryURL: f.srv.URL + "/.well-known/openid-configuration",
		Keys:         KeysConfig{FetchTimeout: 2 * time.Second, UnknownKIDInterval: 30 * time.Second},
	}
}

// clock is a test clock: real time plus an offset that tests move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// startVerifier builds, starts and waits for a verifier; Close runs at
// cleanup.
func startVerifier(t *testing.T, issuers []IssuerConfig, opts Options) *Verifier {
	t.Helper()
	if opts.RetryMin == 0 {
		opts.RetryMin = 50 * time.Millisecond
	}
	v, err := NewVerifier(issuers, opts)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	v.Start(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := v.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	return v
}

// mint signs a GitLab-like instance token; edit changes claims (delete with
// a nil value) before signing.
func mint(t testing.TB, key *rsa.PrivateKey, iss string, edit func(h, c map[string]any)) string {
	t.Helper()
	kid, err := jwks.Thumbprint(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}
	c := map[string]any{
		"iss": iss, "sub": "8f6e4253-58ce-42b9-869c-97f5c2287ad2",
		"aud": []string{"gitlab-ai-gateway"}, "iat": now.Unix(), "nbf": now.Unix() - 5,
		"exp": now.Add(time.Hour).Unix(), "jti": randomUUID(), "gitlab_realm": "saas",
		"scopes": []string{"complete_code", "duo_chat"},
	}
	if edit != nil {
		edit(h, c)
	}
	for _, m := range []map[string]any{h, c} {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
	}
	tok, err := Sign(key, h, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) string { return "Bearer " + tok }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
