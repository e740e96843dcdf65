package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser. It must never
// panic; every key it accepts is a public RSA (≥ MinRSABits) or EC key whose
// thumbprint is recomputed identically, and kids are unique.
func FuzzParseJWKS(f *testing.F) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	doc, err := MarshalJWKS([]crypto.PublicKey{&rk.PublicKey, &ek.PublicKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"a"},{"kty":"RSA","kid":"a"}]}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			if keys != nil {
				t.Fatalf("keys returned with an error: %v", err)
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		kids := map[string]bool{}
		for _, k := range keys {
			switch pub := k.Public.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < MinRSABits {
					t.Fatalf("accepted an RSA key of %d bits", pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
			default:
				t.Fatalf("accepted a key of type %T", k.Public)
			}
			tp, err := Thumbprint(k.Public)
			if err != nil || tp != k.Thumbprint {
				t.Fatalf("thumbprint %q, recomputed %q (%v)", k.Thumbprint, tp, err)
			}
			if k.KID != "" {
				if kids[k.KID] {
					t.Fatalf("duplicate kid %q accepted", k.KID)
				}
				kids[k.KID] = true
			}
		}
	})
}
