package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
)

type mixOptions struct {
	keyFile     string
	issuer      string
	audience    string
	backend     string
	tokens      int
	users       int
	denyPercent int
	requests    int
}

// request is one pre-encoded CheckRequest and the decision it was built to get.
type request struct {
	name      string
	wantAllow bool
	encoded   []byte
}

// route is one AI gateway route of the mix, with the unit primitive it needs.
type route struct {
	method, path, up, upHeader string
}

// allowedRoutes are requests an instance token with the full Duo Enterprise
// grant may make (facts §4.1).
var allowedRoutes = []route{
	{"POST", "/v2/code/completions", "complete_code", ""},
	{"POST", "/v2/code/generations", "generate_code", ""},
	{"POST", "/v1/chat/agent", "duo_chat", ""},
	{"POST", "/v1/search/gitlab-docs", "documentation_search", ""},
	{"POST", "/v1/proxy/anthropic/v1/messages", "review_merge_request", "review_merge_request"},
}

// grantedScopes are the scopes of the "allowed" tokens; the denied requests
// ask for a unit primitive outside them.
var grantedScopes = []string{"complete_code", "generate_code", "duo_chat", "documentation_search", "review_merge_request"}

// buildMix mints the tokens and encodes the requests. Most requests are
// allowed; deny-percent of them are built to be denied in one of three ways:
// a unit primitive the token lacks (403), an instance-id header that does not
// match the token (401), or no Authorization header at all (401).
func buildMix(o mixOptions, now time.Time) ([]request, error) {
	if o.keyFile == "" || o.issuer == "" {
		return nil, errors.New("--key and --issuer are required (an issuer key the target trusts)")
	}
	if o.tokens < 1 || o.requests < 1 || o.users < 1 || o.denyPercent < 0 || o.denyPercent > 100 {
		return nil, errors.New("--tokens, --requests and --users must be positive and --deny-percent within 0..100")
	}
	key, err := readKey(o.keyFile)
	if err != nil {
		return nil, err
	}
	type instance struct{ id, token string }
	instances := make([]instance, o.tokens)
	for i := range instances {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		tok, err := mint(key, map[string]any{
			"iss":          o.issuer,
			"sub":          id,
			"aud":          []string{o.audience},
			"iat":          now.Unix(),
			"nbf":          now.Unix() - 5,
			"exp":          now.Add(time.Hour).Unix(),
			"jti":          fmt.Sprintf("load-%d", i),
			"gitlab_realm": "self-managed",
			"scopes":       grantedScopes,
		})
		if err != nil {
			return nil, err
		}
		instances[i] = instance{id, tok}
	}

	rng := mrand.New(mrand.NewPCG(1, 2)) // fixed seed: every run sends the same mix
	reqs := make([]request, o.requests)
	for i := range reqs {
		in := instances[rng.IntN(len(instances))]
		user := fmt.Sprintf("user-%d", rng.IntN(o.users))
		rt := allowedRoutes[rng.IntN(len(allowedRoutes))]
		h := map[string]string{
			"authorization":                "Bearer " + in.token,
			"x-gitlab-authentication-type": "oidc",
			"x-gitlab-instance-id":         in.id,
			"x-gitlab-realm":               "self-managed",
			"x-gitlab-global-user-id":      user,
			"x-gitlab-duo-seat-count":      "42",
			"content-type":                 "application/json",
			"user-agent":                   "ccauthz-load/1",
		}
		name, want := "allow "+rt.path, true
		if rng.IntN(100) < o.denyPercent {
			want = false
			switch rng.IntN(3) {
			case 0:
				rt = route{"POST", "/v1/chat/troubleshoot_job", "troubleshoot_job", ""}
				name = "deny scope " + rt.path
			case 1:
				h["x-gitlab-instance-id"] = "not-" + in.id
				name = "deny header mismatch"
			default:
				delete(h, "authorization")
				name = "deny no authorization"
			}
		}
		if rt.upHeader != "" {
			h["x-gitlab-unit-primitive"] = rt.upHeader
		}
		b, err := encode(rt, h, o.backend, i)
		if err != nil {
			return nil, err
		}
		reqs[i] = request{name: name, wantAllow: want, encoded: b}
	}
	return reqs, nil
}

func encode(rt route, headers map[string]string, backend string, i int) ([]byte, error) {
	headers[":authority"] = "cloud.gitlab.com"
	headers[":method"] = rt.method
	headers[":path"] = rt.path
	headers["x-request-id"] = fmt.Sprintf("load-%d", i)
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       fmt.Sprint(i),
			Method:   rt.method,
			Path:     rt.path,
			Host:     "cloud.gitlab.com",
			Scheme:   "https",
			Protocol: "HTTP/2",
			Headers:  headers,
		}},
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
	}}
	if backend != "" {
		req.Attributes.ContextExtensions = map[string]string{"backend": backend}
	}
	return proto.Marshal(req)
}

func readKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", path)
	}
	return rk, nil
}

// mint signs claims with RS256, kid = RFC 7638 thumbprint of the public key.
func mint(key *rsa.PrivateKey, claims map[string]any) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": thumbprint(&key.PublicKey)})
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

func thumbprint(pub *rsa.PublicKey) string {
	enc := base64.RawURLEncoding
	e := big(pub.E)
	doc := fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, enc.EncodeToString(e), enc.EncodeToString(pub.N.Bytes()))
	sum := sha256.Sum256([]byte(doc))
	return enc.EncodeToString(sum[:])
}

func big(e int) []byte {
	var b []byte
	for ; e > 0; e >>= 8 {
		b = append([]byte{byte(e)}, b...)
	}
	return b
}
