package jwks

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MinRSABits is the smallest RSA modulus accepted in a JWKS or a signing key.
const MinRSABits = 2048

// maxKeysPerDocument bounds a JWKS document; GitLab publishes a handful.
const maxKeysPerDocument = 100

// Key is one validated public signing key.
type Key struct {
	// KID is the key id from the JWKS ("" when the document gives none).
	KID string
	// Alg is the key's "alg" member ("" when absent: any allowed algorithm
	// of the key's type).
	Alg string
	// Public is an *rsa.PublicKey or an *ecdsa.PublicKey.
	Public crypto.PublicKey
	// Thumbprint is the RFC 7638 SHA-256 thumbprint (base64url): a stable
	// identity of the key material whatever its kid.
	Thumbprint string
}

// Type returns "RSA" or "EC".
func (k *Key) Type() string {
	if _, ok := k.Public.(*ecdsa.PublicKey); ok {
		return "EC"
	}
	return "RSA"
}

// wireJWK is the wire form of a JSON Web Key (only the members we read).
type wireJWK struct {
	Kty string          `json:"kty"`
	Kid *string         `json:"kid,omitempty"`
	Use string          `json:"use,omitempty"`
	Alg string          `json:"alg,omitempty"`
	N   string          `json:"n,omitempty"`
	E   string          `json:"e,omitempty"`
	Crv string          `json:"crv,omitempty"`
	X   string          `json:"x,omitempty"`
	Y   string          `json:"y,omitempty"`
	D   json.RawMessage `json:"d,omitempty"`
	P   json.RawMessage `json:"p,omitempty"`
	K   json.RawMessage `json:"k,omitempty"`
}

// rsaAlgs and ecAlgs are the signature algorithms a key of each type may
// carry in its "alg" member.
var (
	rsaAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs  = map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
)

// ParseJWKS decodes and validates a JWKS document. Every key must be an RSA
// (≥ 2048 bits) or EC (P-256/384/521) public key for signatures; kids must be
// unique; private or symmetric key material is refused. The error lists every
// problem, one per line, naming the key by index and kid.
func ParseJWKS(data []byte) ([]*Key, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("JWKS is not a JSON object: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS has no "keys" member`)
	}
	if len(*doc.Keys) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	if len(*doc.Keys) > maxKeysPerDocument {
		return nil, fmt.Errorf("JWKS has %d keys, more than the limit of %d", len(*doc.Keys), maxKeysPerDocument)
	}
	var problems []string
	keys := make([]*Key, 0, len(*doc.Keys))
	seen := map[string]int{}
	for i, raw := range *doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("key %d%s: %v", i, kidLabel(raw), err))
			continue
		}
		if k.KID != "" {
			if j, dup := seen[k.KID]; dup {
				problems = append(problems, fmt.Sprintf("key %d: duplicate kid %q (also key %d)", i, k.KID, j))
				continue
			}
			seen[k.KID] = i
		}
		keys = append(keys, k)
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return keys, nil
}

func kidLabel(raw json.RawMessage) string {
	var v struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &v) == nil && v.Kid != "" {
		return fmt.Sprintf(" (kid %q)", v.Kid)
	}
	return ""
}

func parseJWK(raw json.RawMessage) (*Key, error) {
	var j wireJWK
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("not a JSON object with string members: %w", err)
	}
	if len(j.D) > 0 || len(j.P) > 0 {
		return nil, errors.New("contains private key material (publish public keys only)")
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, fmt.Errorf("use is %q, want \"sig\"", j.Use)
	}
	k := &Key{Alg: j.Alg}
	if j.Kid != nil {
		if *j.Kid == "" {
			return nil, errors.New("kid is empty")
		}
		k.KID = *j.Kid
	}
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && !contains(rsaAlgs, j.Alg) {
			return nil, fmt.Errorf("alg %q is not an RSA signature algorithm", j.Alg)
		}
		n, err := b64int("n", j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64int("e", j.E)
		if err != nil {
			return nil, err
		}
		if n.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", n.BitLen(), MinRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("RSA exponent e is not a small odd integer")
		}
		k.Public = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		curve, err := namedCurve(j.Crv)
		if err != nil {
			return nil, err
		}
		if j.Alg != "" {
			want, ok := ecAlgs[j.Alg]
			if !ok {
				return nil, fmt.Errorf("alg %q is not an EC signature algorithm", j.Alg)
			}
			if want != j.Crv {
				return nil, fmt.Errorf("alg %q needs curve %s, key is on %s", j.Alg, want, j.Crv)
			}
		}
		pub, err := ecPublic(curve, j.X, j.Y)
		if err != nil {
			return nil, err
		}
		k.Public = pub
	case "oct":
		return nil, errors.New("symmetric (oct) keys are not accepted")
	case "":
		return nil, errors.New(`missing "kty"`)
	default:
		return nil, fmt.Errorf("kty %q is not supported (want RSA or EC)", j.Kty)
	}
	tp, err := Thumbprint(k.Public)
	if err != nil {
		return nil, err
	}
	k.Thumbprint = tp
	return k, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func b64int(name, s string) (*big.Int, error) {
	if s == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url without padding: %w", name, err)
	}
	return new(big.Int).SetBytes(b), nil
}

func namedCurve(crv string) (elliptic.Curve, error) {
	switch crv {
	case "P-256":
		return elliptic.P256(), nil
	case "P-384":
		return elliptic.P384(), nil
	case "P-521":
		return elliptic.P521(), nil
	case "":
		return nil, errors.New(`EC key is missing "crv"`)
	}
	return nil, fmt.Errorf("EC curve %q is not supported", crv)
}

func ecPublic(curve elliptic.Curve, xs, ys string) (*ecdsa.PublicKey, error) {
	size := (curve.Params().BitSize + 7) / 8
	x, err := base64.RawURLEncoding.DecodeString(xs)
	if err != nil || len(x) != size {
		return nil, fmt.Errorf("EC x is not %d base64url bytes", size)
	}
	y, err := base64.RawURLEncoding.DecodeString(ys)
	if err != nil || len(y) != size {
		return nil, fmt.Errorf("EC y is not %d base64url bytes", size)
	}
	// Let crypto/ecdh-backed parsing check that the point is on the curve.
	point := append(append([]byte{4}, x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("EC point is invalid: %w", err)
	}
	return pub, nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of an RSA or EC public
// key, base64url-encoded: GitLab uses it as the kid of its signing keys.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	var canon string
	switch p := pub.(type) {
	case *rsa.PublicKey:
		canon = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(p.E)).Bytes()), b64(p.N.Bytes()))
	case *ecdsa.PublicKey:
		crv, x, y, err := ecMembers(p)
		if err != nil {
			return "", err
		}
		canon = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, crv, x, y)
	default:
		return "", fmt.Errorf("unsupported public key type %T", pub)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:]), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecMembers(p *ecdsa.PublicKey) (crv, x, y string, err error) {
	raw, err := p.Bytes()
	if err != nil {
		return "", "", "", fmt.Errorf("EC public key: %w", err)
	}
	size := (len(raw) - 1) / 2
	switch p.Curve {
	case elliptic.P256():
		crv = "P-256"
	case elliptic.P384():
		crv = "P-384"
	case elliptic.P521():
		crv = "P-521"
	default:
		return "", "", "", errors.New("unsupported EC curve")
	}
	return crv, b64(raw[1 : 1+size]), b64(raw[1+size:]), nil
}

// PublicJWK returns the public JWK of pub as a JSON-ready map with
// kid = RFC 7638 thumbprint, use "sig" and the key's signature algorithm.
func PublicJWK(pub crypto.PublicKey) (map[string]string, error) {
	kid, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", p.N.BitLen(), MinRSABits)
		}
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		crv, x, y, err := ecMembers(p)
		if err != nil {
			return nil, err
		}
		alg := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[crv]
		return map[string]string{"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": crv, "x": x, "y": y}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// MarshalJWKS returns the public JWKS document of the given keys, indented,
// with a trailing newline. Duplicate keys are an error.
func MarshalJWKS(pubs []crypto.PublicKey) ([]byte, error) {
	keys := make([]map[string]string, 0, len(pubs))
	seen := map[string]bool{}
	for i, p := range pubs {
		j, err := PublicJWK(p)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if seen[j["kid"]] {
			return nil, fmt.Errorf("key %d: the same key is given twice (kid %s)", i, j["kid"])
		}
		seen[j["kid"]] = true
		keys = append(keys, j)
	}
	out, err := json.MarshalIndent(map[string]any{"keys": keys}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode JWKS: %w", err)
	}
	return append(out, '\n'), nil
}

// ParsePrivateKeyPEM reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC).
// RSA keys must have at least MinRSABits bits.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkSigner(key)
}

// ParsePublicKeyPEM reads a PEM public key (PKIX "PUBLIC KEY") or, for
// convenience, the public half of a PEM private key.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != "PUBLIC KEY" {
		s, err := ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, err
		}
		return s.Public(), nil
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PUBLIC KEY: %w", err)
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", p.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	return pub, nil
}

func checkSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		if _, _, _, err := ecMembers(&k.PublicKey); err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T (want RSA or EC)", key)
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
