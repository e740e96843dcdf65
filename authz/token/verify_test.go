package token

import (
	"crypto"

	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"github.com/ccauthz/ccauthz/authz/jwks"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const aud = "gitlab-ai-gateway"

// rawToken encodes header and claims and appends sig as given: for tokens
// no honest signer would produce.
func rawToken(t *testing.T, h, c map[string]any, sig []byte) string {
	t.Helper()
	return b64.EncodeToString(mustJSON(t, h)) + "." + b64.EncodeToString(mustJSON(t, c)) + "." + b64.EncodeToString(sig)
}

func TestVerifyAuthorizationHeader(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	tok := mint(t, keys[0], f.srv.URL, nil)
	tests := []struct {
		name   string
		header string
		status Status
		reason Reason
	}{
		{"absent", "", StatusMissing, ReasonMissing},
		{"basic scheme", "Basic dXNlcjpwYXNz", StatusMalformed, ReasonMalformedHeader},
		// The AI gateway splits on the first space: "Bearer" alone is the
		// right scheme with an empty token, which its JWT decoder refuses
		// ("Forbidden by auth provider"), not a malformed header.
		{"scheme only", "Bearer", StatusInvalid, ReasonMalformed},
		{"empty token", "Bearer ", StatusInvalid, ReasonMalformed},
		{"scheme only, lower case", "bearer", StatusInvalid, ReasonMalformed},
		{"other scheme only", "Basic", StatusMalformed, ReasonMalformedHeader},
		{"scheme glued to token", "Bearer" + tok, StatusMalformed, ReasonMalformedHeader},
		{"token without scheme", tok, StatusMalformed, ReasonMalformedHeader},
		{"lower-case scheme", "bearer " + tok, StatusValid, ReasonOK},
		{"upper-case scheme", "BEARER " + tok, StatusValid, ReasonOK},
		{"two spaces", "Bearer  " + tok, StatusInvalid, ReasonMalformed},
		{"valid", "Bearer " + tok, StatusValid, ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.Verify(t.Context(), tt.header, aud)
			if r.Status != tt.status || r.Reason != tt.reason {
				t.Fatalf("Verify = %s/%s (%s), want %s/%s", r.Status, r.Reason, r.Message, tt.status, tt.reason)
			}
			if r.Status == StatusValid {
				sum := sha256.Sum256([]byte(tok))
				if r.Hash != hex.EncodeToString(sum[:]) {
					t.Fatalf("Hash = %s, want the SHA-256 of the token", r.Hash)
				}
				if r.Issuer != "gitlab_com" || r.Kind != KindInstance || r.Claims.Subject != "8f6e4253-58ce-42b9-869c-97f5c2287ad2" ||
					r.Claims.Realm != "saas" || len(r.Claims.Scopes) != 2 || r.Claims.Raw["jti"] != r.Claims.JTI {
					t.Fatalf("unexpected result %+v claims %+v", r, r.Claims)
				}
			}
			if strings.Contains(r.Message, tok) {
				t.Fatalf("message contains the token: %s", r.Message)
			}
		})
	}
}

// TestAttackCorpus rejects every hostile token with the expected reason,
// and never fetches a key URL named by a token.
func TestAttackCorpus(t *testing.T) {
	keys := testKeys()
	a := newFakeIssuer(t, keys[0])
	b := newFakeIssuer(t, keys[1])
	var bait atomic.Int64
	baitSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bait.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer baitSrv.Close()
	realmCfg := b.config("customers_dot")
	realmCfg.Realm = "self-managed"
	v := startVerifier(t, []IssuerConfig{a.config("gitlab_com"), realmCfg}, Options{})

	pubDER, err := x509.MarshalPKIXPublicKey(keys[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid := mint(t, keys[0], a.srv.URL, nil)
	claims := func(edit func(c map[string]any)) map[string]any {
		c := map[string]any{"iss": a.srv.URL, "sub": "x", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hs256 := func(secret []byte) string {
		h := map[string]any{"alg": "HS256", "typ": "JWT"}
		in := b64.EncodeToString(mustJSON(t, h)) + "." + b64.EncodeToString(mustJSON(t, claims(nil)))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64.EncodeToString(m.Sum(nil))
	}
	parts := strings.Split(valid, ".")
	huge := strings.Repeat("x", 9<<10)

	tests := []struct {
		name   string
		token  string
		status Status
		reason Reason
	}{
		{"alg none", rawToken(t, map[string]any{"alg": "none"}, claims(nil), nil), StatusInvalid, ReasonDisallowedAlgorithm},
		{"alg None", rawToken(t, map[string]any{"alg": "None"}, claims(nil), nil), StatusInvalid, ReasonDisallowedAlgorithm},
		{"HS256 with the RSA public key PEM as secret", hs256(pubPEM), StatusInvalid, ReasonDisallowedAlgorithm},
		{"HS256 with the RSA public key DER as secret", hs256(pubDER), StatusInvalid, ReasonDisallowedAlgorithm},
		{"key of issuer A, iss of issuer B", mint(t, keys[0], b.srv.URL, func(h, c map[string]any) { c["gitlab_realm"] = "self-managed" }), StatusInvalid, ReasonUnknownKey},
		{"key of issuer A, iss of B, kid of B", mint(t, keys[0], b.srv.URL, func(h, c map[string]any) {
			kid, _ := thumb(keys[1])
			h["kid"] = kid
			c["gitlab_realm"] = "self-managed"
		}), StatusInvalid, ReasonBadSignature},
		{"key of A without kid, iss of B", mint(t, keys[0], b.srv.URL, func(h, c map[string]any) { h["kid"] = nil; c["gitlab_realm"] = "self-managed" }), StatusInvalid, ReasonBadSignature},
		{"unknown issuer", mint(t, keys[0], "https://evil.example", nil), StatusInvalid, ReasonUnknownIssuer},
		{"iss with trailing slash is another issuer", mint(t, keys[0], a.srv.URL+"/", nil), StatusInvalid, ReasonUnknownIssuer},
		{"no iss", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["iss"] = nil }), StatusInvalid, ReasonUnknownIssuer},
		{"jku injection", mint(t, keys[2], a.srv.URL, func(h, c map[string]any) { h["kid"] = "attacker"; h["jku"] = baitSrv.URL + "/jwks" }), StatusInvalid, ReasonUnknownKey},
		{"x5u injection", mint(t, keys[2], a.srv.URL, func(h, c map[string]any) { h["kid"] = nil; h["x5u"] = baitSrv.URL + "/cert" }), StatusInvalid, ReasonBadSignature},
		{"embedded jwk", mint(t, keys[2], a.srv.URL, func(h, c map[string]any) {
			h["kid"] = nil
			h["jwk"] = map[string]any{"kty": "RSA", "n": b64.EncodeToString(keys[2].N.Bytes()), "e": "AQAB"}
		}), StatusInvalid, ReasonBadSignature},
		{"x5c injection", mint(t, keys[2], a.srv.URL, func(h, c map[string]any) { h["x5c"] = []string{"MIIB"}; h["kid"] = nil }), StatusInvalid, ReasonBadSignature},
		{"crit header", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { h["crit"] = []string{"exp"} }), StatusInvalid, ReasonMalformed},
		{"expired", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["exp"] = time.Now().Add(-time.Second).Unix() }), StatusInvalid, ReasonExpired},
		{"not yet valid", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["nbf"] = time.Now().Add(time.Minute).Unix() }), StatusInvalid, ReasonNotYetValid},
		// iat is only type-checked, as python-jose does for the gateway.
		{"issued in the future", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }), StatusValid, ReasonOK},
		{"iat as a string", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["iat"] = "1700000000" }), StatusInvalid, ReasonBadClaims},
		{"nbf as a string", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["nbf"] = "1700000000" }), StatusInvalid, ReasonBadClaims},
		{"no exp", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["exp"] = nil }), StatusInvalid, ReasonMissingExpiry},
		{"exp as a string", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["exp"] = "9999999999" }), StatusInvalid, ReasonBadClaims},
		{"no aud", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["aud"] = nil }), StatusInvalid, ReasonMissingAudience},
		{"empty aud array", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["aud"] = []string{} }), StatusInvalid, ReasonMissingAudience},
		{"wrong aud", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["aud"] = []string{"gitlab-duo-workflow-service"} }), StatusInvalid, ReasonBadAudience},
		{"aud as a number", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["aud"] = 42 }), StatusInvalid, ReasonBadClaims},
		{"scopes as a string", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["scopes"] = "complete_code" }), StatusInvalid, ReasonBadClaims},
		{"scopes with a number", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["scopes"] = []any{"complete_code", 1} }), StatusInvalid, ReasonBadClaims},
		{"wrong realm for the issuer", mint(t, keys[1], b.srv.URL, func(h, c map[string]any) { c["gitlab_realm"] = "saas" }), StatusInvalid, ReasonBadClaims},
		{"oversized", valid + strings.Repeat("A", DefaultMaxTokenBytes), StatusInvalid, ReasonTooLarge},
		{"truncated", valid[:len(valid)-10], StatusInvalid, ReasonBadSignature},
		{"truncated to two parts", parts[0] + "." + parts[1], StatusInvalid, ReasonMalformed},
		{"non-base64 payload", parts[0] + ".!!!." + parts[2], StatusInvalid, ReasonMalformed},
		{"padded base64 signature", valid + "=", StatusInvalid, ReasonMalformed},
		{"extra dots", valid + ".x", StatusInvalid, ReasonMalformed},
		{"empty parts", "..", StatusInvalid, ReasonMalformed},
		{"payload not an object", parts[0] + "." + b64.EncodeToString([]byte(`[1,2]`)) + "." + parts[2], StatusInvalid, ReasonMalformed},
		{"signature of another payload", parts[0] + "." + b64.EncodeToString(mustJSON(t, claims(func(c map[string]any) { c["scopes"] = []string{"everything"} }))) + "." + parts[2], StatusInvalid, ReasonBadSignature},
		{"huge claims", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["blob"] = huge }), StatusValid, ReasonOK},
		{"huge claims over the limit", mint(t, keys[0], a.srv.URL, func(h, c map[string]any) { c["blob"] = huge + huge }), StatusInvalid, ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.Verify(t.Context(), bearer(tt.token), aud)
			if r.Status != tt.status || r.Reason != tt.reason {
				t.Fatalf("Verify = %s/%s (%s), want %s/%s", r.Status, r.Reason, r.Message, tt.status, tt.reason)
			}
			if r.Status != StatusValid && r.Claims != nil {
				t.Fatal("claims returned for a rejected token")
			}
			if r.Hash == "" {
				t.Fatal("no hash for a present token")
			}
		})
	}
	if n := bait.Load(); n != 0 {
		t.Fatalf("%d requests reached a URL named by a token header", n)
	}
}

func thumb(k interface{ Public() crypto.PublicKey }) (string, error) {
	return jwks.Thumbprint(k.Public())
}

// TestVerifyTimeClaims walks the validity window with a fixed clock: exp
// and nbf exact at skew 0 (the gateway's leeway), widened by ClockSkew; iat
// never compared. A signer whose clock runs 3 s fast (GitLab mints
// nbf = iat - 5 s) is valid, the example.
func TestVerifyTimeClaims(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	now := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	tests := []struct {
		name   string
		skew   time.Duration
		claims map[string]any
		reason Reason
	}{
		{"signer 3s fast", 0, map[string]any{"iat": at(3 * time.Second), "nbf": at(-2 * time.Second), "exp": at(time.Hour)}, ReasonOK},
		{"iat a day ahead", 0, map[string]any{"iat": at(24 * time.Hour), "exp": at(time.Hour)}, ReasonOK},
		{"exp now", 0, map[string]any{"exp": at(0)}, ReasonExpired},
		{"exp in 1s", 0, map[string]any{"exp": at(time.Second)}, ReasonOK},
		{"nbf now", 0, map[string]any{"nbf": at(0), "exp": at(time.Hour)}, ReasonOK},
		{"nbf in 1s", 0, map[string]any{"nbf": at(time.Second), "exp": at(time.Hour)}, ReasonNotYetValid},
		{"exp 5s ago, skew 10s", 10 * time.Second, map[string]any{"exp": at(-5 * time.Second)}, ReasonOK},
		{"exp 10s ago, skew 10s", 10 * time.Second, map[string]any{"exp": at(-10 * time.Second)}, ReasonExpired},
		{"nbf in 10s, skew 10s", 10 * time.Second, map[string]any{"nbf": at(10 * time.Second), "exp": at(time.Hour)}, ReasonOK},
		{"nbf in 11s, skew 10s", 10 * time.Second, map[string]any{"nbf": at(11 * time.Second), "exp": at(time.Hour)}, ReasonNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{ClockSkew: tt.skew, Now: func() time.Time { return now }, CacheEntries: -1})
			tok := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) {
				delete(c, "iat")
				delete(c, "nbf")
				for k, v := range tt.claims {
					c[k] = v
				}
			})
			if r := v.Verify(t.Context(), bearer(tok), aud); r.Reason != tt.reason {
				t.Fatalf("Verify = %s/%s (%s), want %s", r.Status, r.Reason, r.Message, tt.reason)
			}
		})
	}
}

func TestVerifyHonoursClockSkew(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{ClockSkew: 30 * time.Second})
	for name, edit := range map[string]func(h, c map[string]any){
		"expired 10s ago":  func(h, c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() },
		"nbf in 10s":       func(h, c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Second).Unix() },
		"iat in 10s":       func(h, c map[string]any) { c["iat"] = time.Now().Add(10 * time.Second).Unix() },
		"aud single value": func(h, c map[string]any) { c["aud"] = aud },
	} {
		if r := v.Verify(t.Context(), bearer(mint(t, keys[0], f.srv.URL, edit)), aud); r.Status != StatusValid {
			t.Errorf("%s: %s/%s (%s), want valid within the skew", name, r.Status, r.Reason, r.Message)
		}
	}
}

func TestVerifyCache(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	clk := &clock{}
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{Now: clk.Now})
	tok := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) {
		c["aud"] = []string{aud, "gitlab-duo-workflow-service"}
		c["exp"] = time.Now().Add(10 * time.Minute).Unix()
	})
	for i := range 3 {
		if r := v.Verify(t.Context(), bearer(tok), aud); r.Status != StatusValid {
			t.Fatalf("call %d: %s/%s", i, r.Status, r.Reason)
		}
	}
	// The audience is checked per request on cached claims.
	if r := v.Verify(t.Context(), bearer(tok), "gitlab-duo-workflow-service"); r.Status != StatusValid {
		t.Fatalf("second audience: %s/%s", r.Status, r.Reason)
	}
	if r := v.Verify(t.Context(), bearer(tok), "other-backend"); r.Reason != ReasonBadAudience || r.Claims != nil {
		t.Fatalf("other audience from cache: %s/%s", r.Status, r.Reason)
	}
	st := v.Stats()
	if st.Misses != 1 || st.Hits != 4 || st.Entries != 1 {
		t.Fatalf("Stats = %+v, want 1 miss, 4 hits, 1 entry", st)
	}
	// Past exp the cached entry is not served.
	clk.Advance(11 * time.Minute)
	if r := v.Verify(t.Context(), bearer(tok), aud); r.Reason != ReasonExpired {
		t.Fatalf("after exp: %s/%s, want expired", r.Status, r.Reason)
	}
	if st := v.Stats(); st.Entries != 0 {
		t.Fatalf("expired entry kept: %+v", st)
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{CacheEntries: 128})
	for range 400 {
		if r := v.Verify(t.Context(), bearer(mint(t, keys[0], f.srv.URL, nil)), aud); r.Status != StatusValid {
			t.Fatalf("%s/%s", r.Status, r.Reason)
		}
	}
	st := v.Stats()
	if st.Entries > 128 || st.Evictions == 0 {
		t.Fatalf("Stats = %+v: want at most 128 entries and some evictions", st)
	}
}

func TestVerifyRespectsContextDuringRefetch(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	f.set(func(f *fakeIssuer) { f.delay = time.Minute })
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := v.Verify(ctx, bearer(mint(t, keys[1], f.srv.URL, nil)), aud)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Verify took %s past a 100ms deadline", took)
	}
	if r.Status != StatusUnavailable || r.Reason != ReasonKeysUnavailable {
		t.Fatalf("Verify = %s/%s (%s), want unavailable", r.Status, r.Reason, r.Message)
	}
}

// TestVerifyConcurrent hammers the cache from several goroutines with
// several tokens and audiences while the issuer rotates keys (run with -race).
func TestVerifyConcurrent(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	toks := make([]string, 16)
	for i := range toks {
		toks[i] = mint(t, keys[0], f.srv.URL, nil)
	}
	fresh := mint(t, keys[1], f.srv.URL, nil)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				tok, audience, want := toks[(w+i)%len(toks)], aud, StatusValid
				if i%3 == 0 {
					audience, want = "gitlab-duo-workflow-service", StatusInvalid
				}
				if w == 0 && i == 150 {
					f.setKeys(keys[0], keys[1])
					tok = fresh
					audience, want = aud, StatusValid
				}
				if r := v.Verify(t.Context(), bearer(tok), audience); r.Status != want {
					t.Errorf("worker %d call %d: %s/%s, want %s", w, i, r.Status, r.Reason, want)
					return
				}
			}
		})
	}
	wg.Wait()
	// Two goroutines may both miss on a token's first sight; every call is
	// a hit or a miss, and each distinct token ends up cached once.
	if st := v.Stats(); st.Misses < 17 || st.Hits+st.Misses != 8*300 || st.Entries != 17 {
		t.Fatalf("Stats = %+v, want at least 17 misses, 2400 lookups and 17 entries", st)
	}
}

func TestGrantDigest(t *testing.T) {
	base := map[string]any{
		"iss": "https://gitlab.com", "sub": "i1", "aud": []any{"gitlab-ai-gateway"},
		"scopes": []any{"complete_code"}, "gitlab_realm": "saas",
		"jti": "a", "iat": 1.0, "nbf": 1.0, "exp": 2.0,
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	d := grantDigest(base)
	if len(d) != 64 {
		t.Fatalf("digest %q", d)
	}
	for _, k := range PerTokenClaims() {
		if got := grantDigest(with(k, "other")); got != d {
			t.Errorf("changing %s changed the digest", k)
		}
	}
	for k, v := range map[string]any{"sub": "i2", "scopes": []any{"complete_code", "duo_chat"}, "gitlab_realm": "self-managed", "skip_usage_cutoff": true} {
		if got := grantDigest(with(k, v)); got == d {
			t.Errorf("changing %s did not change the digest", k)
		}
	}
}
