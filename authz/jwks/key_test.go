package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

var testRSA = sync.OnceValue(func() []*rsa.PrivateKey {
	out := make([]*rsa.PrivateKey, 2)
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = k
	}
	return out
})

// TestThumbprintMatchesJWX checks the RFC 7638 thumbprint against an
// independent implementation.
func TestThumbprintMatchesJWX(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []crypto.PublicKey{testRSA()[0].Public(), ec.Public()} {
		got, err := Thumbprint(pub)
		if err != nil {
			t.Fatal(err)
		}
		k, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		want, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got != base64.RawURLEncoding.EncodeToString(want) {
			t.Fatalf("Thumbprint(%T) = %s, jwx says %s", pub, got, base64.RawURLEncoding.EncodeToString(want))
		}
	}
}

func TestMarshalAndParseJWKS(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := MarshalJWKS([]crypto.PublicKey{testRSA()[0].Public(), ec.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), `"d"`) {
		t.Fatal("JWKS contains private material")
	}
	// jwx reads what we publish.
	set, err := jwk.Parse(doc)
	if err != nil || set.Len() != 2 {
		t.Fatalf("jwx cannot parse our JWKS: %v", err)
	}
	keys, err := ParseJWKS(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Alg != "RS256" || keys[1].Alg != "ES384" || keys[0].KID != keys[0].Thumbprint {
		t.Fatalf("parsed %+v", keys)
	}
	if _, err := MarshalJWKS([]crypto.PublicKey{ec.Public(), ec.Public()}); err == nil {
		t.Fatal("duplicate key accepted")
	}
}

func TestParseJWKSProblems(t *testing.T) {
	pub := testRSA()[0].Public().(*rsa.PublicKey)
	n := base64.RawURLEncoding.EncodeToString(pub.N.Bytes())
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallN := base64.RawURLEncoding.EncodeToString(small.N.Bytes())
	key := func(extra string) string {
		return `{"kty":"RSA","kid":"k1","n":"` + n + `","e":"AQAB"` + extra + `}`
	}
	tests := []struct{ name, doc, want string }{
		{"not JSON", `nope`, "JWKS is not a JSON object"},
		{"no keys member", `{}`, `JWKS has no "keys" member`},
		{"empty", `{"keys":[]}`, "JWKS has no keys"},
		{"missing kty", `{"keys":[{"kid":"a"}]}`, `key 0 (kid "a"): missing "kty"`},
		{"oct key", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`, `key 0 (kid "h"): symmetric (oct) keys are not accepted`},
		{"use enc", `{"keys":[` + key(`,"use":"enc"`) + `]}`, `key 0 (kid "k1"): use is "enc", want "sig"`},
		{"alg HS256 on RSA", `{"keys":[` + key(`,"alg":"HS256"`) + `]}`, `key 0 (kid "k1"): alg "HS256" is not an RSA signature algorithm`},
		{"private material", `{"keys":[` + key(`,"d":"AQAB"`) + `]}`, `key 0 (kid "k1"): contains private key material (publish public keys only)`},
		{"small RSA", `{"keys":[{"kty":"RSA","kid":"s","n":"` + smallN + `","e":"AQAB"}]}`, `key 0 (kid "s"): RSA key has 1024 bits, need at least 2048`},
		{"bad base64", `{"keys":[{"kty":"RSA","kid":"b","n":"@@","e":"AQAB"}]}`, `key 0 (kid "b"): "n" is not base64url without padding`},
		{"even exponent", `{"keys":[` + strings.Replace(key(""), "AQAB", "AQAA", 1) + `]}`, `key 0 (kid "k1"): RSA exponent e is not a small odd integer`},
		{"duplicate kid", `{"keys":[` + key("") + `,` + key("") + `]}`, `key 1: duplicate kid "k1" (also key 0)`},
		{"EC off curve", `{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`, `key 0 (kid "e"): EC point is invalid`},
		{"EC alg mismatch", `{"keys":[{"kty":"EC","crv":"P-256","alg":"ES384","x":"a","y":"b"}]}`, `key 0: alg "ES384" needs curve P-384, key is on P-256`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJWKS([]byte(tt.doc))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("ParseJWKS = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestPEMRoundTrip(t *testing.T) {
	k := testRSA()[0]
	pemBytes, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pemBytes), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("not PKCS#8: %s", pemBytes[:40])
	}
	back, err := ParsePrivateKeyPEM(pemBytes)
	if err != nil || !back.(*rsa.PrivateKey).Equal(k) {
		t.Fatalf("round trip: %v", err)
	}
	pub, err := ParsePublicKeyPEM(pemBytes)
	if err != nil || !pub.(*rsa.PublicKey).Equal(k.Public()) {
		t.Fatalf("public of private PEM: %v", err)
	}
	for _, bad := range []string{"", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := ParsePrivateKeyPEM([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	j, _ := PublicJWK(k.Public())
	b, _ := json.Marshal(j)
	if strings.Contains(string(b), `"d"`) || j["kid"] == "" {
		t.Fatalf("PublicJWK = %s", b)
	}
}
