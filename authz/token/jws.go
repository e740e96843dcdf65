package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// header is the part of the JOSE header the verifier reads. jku, x5u, jwk and
// x5c are deliberately not decoded: keys named by a token are never used.
type header struct {
	Alg  string          `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// compact is a JWS in compact serialisation, split and decoded but not
// verified.
type compact struct {
	header       header
	rawHeader    []byte
	payload      map[string]any
	rawPayload   []byte // the payload's JSON
	signingInput string // base64url(header) "." base64url(payload)
	signature    []byte
}

var b64 = base64.RawURLEncoding.Strict()

// parseCompact splits and decodes a compact JWS. Errors are always
// ReasonMalformed.
func parseCompact(tok string) (*compact, error) {
	h, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, errors.New("token is not three dot-separated parts")
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s, '.') >= 0 {
		return nil, errors.New("token is not three dot-separated parts")
	}
	if h == "" || p == "" {
		return nil, errors.New("token has an empty header or payload")
	}
	c := &compact{signingInput: tok[:len(h)+1+len(p)]}
	hb, err := b64.DecodeString(h)
	if err != nil {
		return nil, errors.New("token header is not base64url")
	}
	c.rawHeader = hb
	if err := json.Unmarshal(hb, &c.header); err != nil {
		return nil, errors.New("token header is not a JSON object")
	}
	if len(c.header.Crit) > 0 {
		return nil, errors.New("token header has a crit parameter, which this verifier does not support")
	}
	pb, err := b64.DecodeString(p)
	if err != nil {
		return nil, errors.New("token payload is not base64url")
	}
	c.rawPayload = pb
	if err := json.Unmarshal(pb, &c.payload); err != nil || c.payload == nil {
		return nil, errors.New("token payload is not a JSON object")
	}
	if c.signature, err = b64.DecodeString(s); err != nil {
		return nil, errors.New("token signature is not base64url")
	}
	return c, nil
}

// digestOf hashes the signing input; SHA-256 (RS256, ES256, PS256: what
// GitLab signs with) without the hasher's allocations.
func digestOf(hash crypto.Hash, input string) []byte {
	if hash == crypto.SHA256 {
		d := sha256.Sum256([]byte(input))
		return d[:]
	}
	h := hash.New()
	h.Write([]byte(input))
	return h.Sum(nil)
}

var errKeyMismatch = errors.New("key does not fit the algorithm")

// verifySignature checks sig over input with key for alg.
func verifySignature(alg string, key *jwks.Key, input string, sig []byte) error {
	if key.Alg != "" && key.Alg != alg {
		return errKeyMismatch
	}
	var hash crypto.Hash
	switch alg[2:] {
	case "256":
		hash = crypto.SHA256
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	default:
		return fmt.Errorf("algorithm %q is not supported", alg)
	}
	digest := digestOf(hash, input)
	switch alg[:2] {
	case "RS", "PS":
		pub, ok := key.Public.(*rsa.PublicKey)
		if !ok {
			return errKeyMismatch
		}
		if alg[0] == 'R' {
			return rsa.VerifyPKCS1v15(pub, hash, digest, sig)
		}
		return rsa.VerifyPSS(pub, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		pub, ok := key.Public.(*ecdsa.PublicKey)
		if !ok {
			return errKeyMismatch
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		want := map[crypto.Hash]int{crypto.SHA256: 32, crypto.SHA384: 48, crypto.SHA512: 66}[hash]
		if size != want {
			return errKeyMismatch
		}
		if len(sig) != 2*size {
			return errors.New("ECDSA signature has the wrong length")
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("algorithm %q is not supported", alg)
}
