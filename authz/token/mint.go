package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

// reservedClaims are set by Mint and may not be overridden by MintClaims.Extra.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scopes", "gitlab_realm", "gitlab_instance_id"}

// MintClaims describe a token to mint, as GitLab's issuer builds it.
type MintClaims struct {
	Issuer   string
	Subject  string
	Audience []string // always encoded as an array, as the current issuer does
	Scopes   []string
	// Realm is the gitlab_realm claim (omitted when empty).
	Realm string
	// InstanceID is the gitlab_instance_id claim (omitted when empty).
	InstanceID string
	// IssuedAt is iat (default now); nbf is IssuedAt - 5s and exp is
	// IssuedAt + TTL, as GitLab does.
	IssuedAt time.Time
	TTL      time.Duration
	// JTI defaults to a random UUID.
	JTI string
	// Extra claims are merged at the top level (for example
	// skip_usage_cutoff); they may not replace the claims above.
	Extra map[string]any
}

// Mint signs a JWT with key (RSA → RS256, EC → ES256/384/512) with the header
// {alg, kid, typ: JWT}, kid being the RFC 7638 thumbprint of the public key.
func Mint(key crypto.Signer, c MintClaims) (string, error) {
	if c.Issuer == "" || c.Subject == "" {
		return "", errors.New("mint: issuer and subject are required")
	}
	if c.TTL <= 0 {
		return "", errors.New("mint: ttl must be positive")
	}
	if len(c.Audience) == 0 {
		return "", errors.New("mint: at least one audience is required")
	}
	alg, err := signingAlg(key)
	if err != nil {
		return "", err
	}
	kid, err := jwks.Thumbprint(key.Public())
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	jti := c.JTI
	if jti == "" {
		jti = randomUUID()
	}
	claims := make(map[string]any, len(c.Extra)+10)
	for k, v := range c.Extra {
		for _, r := range reservedClaims {
			if k == r {
				return "", fmt.Errorf("mint: extra claim %q would replace a standard claim", k)
			}
		}
		claims[k] = v
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	claims["iss"] = c.Issuer
	claims["sub"] = c.Subject
	claims["aud"] = c.Audience
	claims["iat"] = iat.Unix()
	claims["nbf"] = iat.Unix() - 5
	claims["exp"] = iat.Add(c.TTL).Unix()
	claims["jti"] = jti
	claims["scopes"] = scopes
	if c.Realm != "" {
		claims["gitlab_realm"] = c.Realm
	}
	if c.InstanceID != "" {
		claims["gitlab_instance_id"] = c.InstanceID
	}
	return Sign(key, map[string]any{"alg": alg, "kid": kid, "typ": "JWT"}, claims)
}

// Sign encodes header and claims as a compact JWS signed with key using the
// header's alg (which must fit the key). Tests use it to build hostile
// tokens; Mint is the normal entry point.
func Sign(key crypto.Signer, header, claims map[string]any) (string, error) {
	hb, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("sign: header: %w", err)
	}
	pb, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign: claims: %w", err)
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(pb)
	alg, _ := header["alg"].(string)
	sig, err := signInput(key, alg, input)
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

func signingAlg(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RS256", nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return "ES256", nil
		case 384:
			return "ES384", nil
		case 521:
			return "ES512", nil
		}
	}
	return "", fmt.Errorf("sign: unsupported key type %T", key)
}

func signInput(key crypto.Signer, alg string, input string) ([]byte, error) {
	if len(alg) != 5 {
		return nil, fmt.Errorf("sign: unsupported alg %q", alg)
	}
	var h crypto.Hash
	var digest []byte
	switch alg[2:] {
	case "256":
		s := sha256.Sum256([]byte(input))
		h, digest = crypto.SHA256, s[:]
	case "384":
		s := sha512.Sum384([]byte(input))
		h, digest = crypto.SHA384, s[:]
	case "512":
		s := sha512.Sum512([]byte(input))
		h, digest = crypto.SHA512, s[:]
	default:
		return nil, fmt.Errorf("sign: unsupported alg %q", alg)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		switch alg[:2] {
		case "RS":
			return rsa.SignPKCS1v15(rand.Reader, k, h, digest)
		case "PS":
			return rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	case *ecdsa.PrivateKey:
		if alg[:2] == "ES" {
			r, s, err := ecdsa.Sign(rand.Reader, k, digest)
			if err != nil {
				return nil, fmt.Errorf("sign: %w", err)
			}
			size := (k.Curve.Params().BitSize + 7) / 8
			out := make([]byte, 2*size)
			r.FillBytes(out[:size])
			s.FillBytes(out[size:])
			return out, nil
		}
	}
	return nil, fmt.Errorf("sign: alg %q does not fit a %T", alg, key)
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
