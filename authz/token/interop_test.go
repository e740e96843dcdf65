package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// TestInteropWithJWX: tokens signed by an independent JOSE library verify,
// and tokens we mint verify there.
func TestInteropWithJWX(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	kid, _ := jwks.Thumbprint(keys[0].Public())
	now := time.Now().Unix()
	payload := mustJSON(t, map[string]any{"iss": f.srv.URL, "sub": "s", "aud": aud, "exp": now + 60, "iat": now, "scopes": []string{"duo_chat"}})
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	signed, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), keys[0], jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	if r := v.Verify(t.Context(), bearer(string(signed)), aud); r.Status != StatusValid {
		t.Fatalf("RS256 token from jwx: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	// The JWKS pins the key to RS256: the same key cannot sign PS256.
	cfg := f.config("gitlab_com")
	cfg.Algorithms = []string{"RS256", "PS256"}
	v2 := startVerifier(t, []IssuerConfig{cfg}, Options{})
	pss, err := jws.Sign(payload, jws.WithKey(jwa.PS256(), keys[0], jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	if r := v2.Verify(t.Context(), bearer(string(pss)), aud); r.Reason != ReasonDisallowedAlgorithm {
		t.Fatalf("PS256 with an RS256 key: %s/%s", r.Status, r.Reason)
	}
	ours, err := Mint(keys[0], MintClaims{Issuer: f.srv.URL, Subject: "s", Audience: []string{aud}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(ours), jws.WithKey(jwa.RS256(), keys[0].Public())); err != nil {
		t.Fatalf("jwx rejects our token: %v", err)
	}
}

// TestAirGappedES256AndKidless covers a jwks_file issuer, ES256, and a token
// without kid (as the AI gateway's own user tokens) tried against that
// issuer's keys only.
func TestAirGappedES256AndKidless(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys()
	doc, err := jwks.MarshalJWKS([]crypto.PublicKey{keys[0].Public(), ec.Public()})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	v := startVerifier(t, []IssuerConfig{{Name: "ai_gateway", Issuer: "gitlab-ai-gateway", JWKSFile: path,
		Algorithms: []string{"RS256", "ES256"}, Kind: KindUser}}, Options{})
	es, err := Mint(ec, MintClaims{Issuer: "gitlab-ai-gateway", Subject: "user", Audience: []string{aud}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r := v.Verify(t.Context(), bearer(es), aud); r.Status != StatusValid || r.Kind != KindUser {
		t.Fatalf("ES256: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	kidless := mint(t, keys[0], "gitlab-ai-gateway", func(h, c map[string]any) { h["kid"] = nil })
	if r := v.Verify(t.Context(), bearer(kidless), aud); r.Status != StatusValid || r.Issuer != "ai_gateway" {
		t.Fatalf("kid-less: %s/%s (%s)", r.Status, r.Reason, r.Message)
	}
	// An RSA key named by kid cannot verify an ES256 token.
	rsaKid, _ := jwks.Thumbprint(keys[0].Public())
	h := map[string]any{"alg": "ES256", "kid": rsaKid}
	c := map[string]any{"iss": "gitlab-ai-gateway", "aud": aud, "exp": time.Now().Add(time.Hour).Unix()}
	confused, err := Sign(ec, h, c)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.Verify(t.Context(), bearer(confused), aud); r.Reason != ReasonDisallowedAlgorithm {
		t.Fatalf("alg/key confusion: %s/%s", r.Status, r.Reason)
	}
}

// TestPSSAndRS384WithKeyWithoutAlg: a JWKS key without "alg" verifies any
// allowed algorithm of its type.
func TestPSSAndRS384WithKeyWithoutAlg(t *testing.T) {
	keys := testKeys()
	j, err := jwks.PublicJWK(keys[3].Public())
	if err != nil {
		t.Fatal(err)
	}
	delete(j, "alg")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, mustJSON(t, map[string]any{"keys": []any{j}}), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startVerifier(t, []IssuerConfig{{Name: "lab", Issuer: "https://lab", JWKSFile: path, Algorithms: []string{"PS256", "RS384"}}}, Options{})
	for _, alg := range []string{"PS256", "RS384", "RS256"} {
		tok := mint(t, keys[3], "https://lab", func(h, c map[string]any) { h["alg"] = alg })
		r := v.Verify(t.Context(), bearer(tok), aud)
		want := StatusValid
		if alg == "RS256" {
			want = StatusInvalid // not in this issuer's algorithms
		}
		if r.Status != want {
			t.Fatalf("%s: %s/%s (%s), want %s", alg, r.Status, r.Reason, r.Message, want)
		}
	}
}
