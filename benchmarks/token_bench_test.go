package benchmarks

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/token"
)

const benchAudience = "gitlab-ai-gateway"

// benchVerifier returns a verifier over a JWKS file holding key's public
// half, and a GitLab-like token signed with key.
func benchVerifier(b *testing.B, cacheEntries int) (*token.Verifier, string, *rsa.PrivateKey) {
	b.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := jwks.MarshalJWKS([]crypto.PublicKey{key.Public()})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		b.Fatal(err)
	}
	v, err := token.NewVerifier([]token.IssuerConfig{{
		Name: "gitlab_com", Issuer: "https://gitlab.com", JWKSFile: path,
	}}, token.Options{CacheEntries: cacheEntries})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	v.Start(context.Background())
	if err := v.WaitReady(context.Background()); err != nil {
		b.Fatal(err)
	}
	tok, err := token.Mint(key, token.MintClaims{
		Issuer: "https://gitlab.com", Subject: "8f6e4253-58ce-42b9-869c-97f5c2287ad2",
		Audience: []string{benchAudience, "gitlab-duo-workflow-service"},
		Scopes:   []string{"complete_code", "generate_code", "duo_chat", "explain_code", "documentation_search"},
		Realm:    "saas", TTL: time.Hour,
		Extra: map[string]any{"skip_usage_cutoff": false},
	})
	if err != nil {
		b.Fatal(err)
	}
	return v, tok, key
}

// BenchmarkVerifyCached is the steady state: the same token presented again
// while valid (the verified-token cache answers).
func BenchmarkVerifyCached(b *testing.B) {
	v, tok, _ := benchVerifier(b, 0)
	ctx := context.Background()
	authz := "Bearer " + tok
	if r := v.Verify(ctx, authz, benchAudience); r.Status != token.StatusValid {
		b.Fatalf("%s/%s", r.Status, r.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Verify(ctx, authz, benchAudience); r.Status != token.StatusValid {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkVerifyCachedParallel measures the cache under concurrency.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v, tok, _ := benchVerifier(b, 0)
	ctx := context.Background()
	authz := "Bearer " + tok
	v.Verify(ctx, authz, benchAudience)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := v.Verify(ctx, authz, benchAudience); r.Status != token.StatusValid {
				b.Error(r.Reason)
				return
			}
		}
	})
}

// BenchmarkVerifyUncached is a first sight of a token: parse, RS256, claims.
func BenchmarkVerifyUncached(b *testing.B) {
	v, tok, _ := benchVerifier(b, -1)
	ctx := context.Background()
	authz := "Bearer " + tok
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Verify(ctx, authz, benchAudience); r.Status != token.StatusValid {
			b.Fatal(r.Reason)
		}
	}
}

// BenchmarkRawRS256 is the floor: one rsa.VerifyPKCS1v15 over the same token.
func BenchmarkRawRS256(b *testing.B) {
	_, tok, key := benchVerifier(b, -1)
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(tok[:i])
	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenCacheEntryBytes measures what one cached verified token
// holds on the heap (heap growth over 2000 distinct tokens of distinct
// instances, after GC), reported as heap-B/entry next to the cache's own
// estimate (est-B/entry), which bounds caches.token_bytes: once as the
// tokens are first verified (the entries keep the payload's JSON), then
// after a second presentation of each (promoted-*: the entries keep the
// decoded claims instead).
func BenchmarkTokenCacheEntryBytes(b *testing.B) {
	v, _, key := benchVerifier(b, 100000)
	const n = 2000
	toks := make([]string, n)
	for i := range toks {
		tok, err := token.Mint(key, token.MintClaims{
			Issuer: "https://gitlab.com", Subject: fmt.Sprintf("8f6e4253-58ce-42b9-869c-%012d", i),
			Audience: []string{benchAudience, "gitlab-duo-workflow-service"},
			Scopes:   []string{"complete_code", "generate_code", "duo_chat", "explain_code", "documentation_search"},
			Realm:    "saas", TTL: time.Hour, JTI: fmt.Sprintf("jti-%d", i),
		})
		if err != nil {
			b.Fatal(err)
		}
		toks[i] = "Bearer " + tok
	}
	ctx := context.Background()
	for b.Loop() {
		// The measurement is two passes, below; the loop only satisfies the
		// benchmark protocol (run with -benchtime 1x).
	}
	pass := func() float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, t := range toks {
			if r := v.Verify(ctx, t, benchAudience); r.Status != token.StatusValid {
				b.Fatal(r.Reason)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st := v.Stats(); st.Entries != n {
			b.Fatalf("cache holds %d of %d tokens", st.Entries, n)
		}
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	first := pass()
	b.ReportMetric(first, "heap-B/entry")
	b.ReportMetric(float64(v.Stats().Bytes)/n, "est-B/entry")
	promoted := first + pass()
	b.ReportMetric(promoted, "promoted-heap-B/entry")
	b.ReportMetric(float64(v.Stats().Bytes)/n, "promoted-est-B/entry")
	runtime.KeepAlive(toks)
}
