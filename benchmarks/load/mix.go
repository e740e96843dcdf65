package main

import (
	"crypto"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/token"

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
	// sequential makes request i use token i mod tokens (instead of a random
	// one), so one pass over tokens requests presents every token once: the
	// memory test's "N distinct live tokens".
	sequential bool
	// mix names the workload (mixCloud, mixSingle, mixRealistic, mixAdversarial).
	mix string
	// jtiPrefix distinguishes a second generation of tokens of the same grants.
	jtiPrefix string
	// lifetime is how long the run needs its tokens (warm-up + duration):
	// tokens live an hour past minting plus this much, so a token minted
	// "an hour ago" (the realistic mix's previous generation) does not
	// expire during a long run and turn allows into 401s.
	lifetime time.Duration
}

// instance is one simulated GitLab instance and its token.
type instance struct{ id, token string }

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
	switch o.mix {
	case "", mixCloud:
	case mixSingle:
		return buildSingle(o, key, now)
	case mixRealistic:
		return buildRealistic(o, key, now)
	case mixAdversarial:
		return buildAdversarial(o)
	default:
		return nil, fmt.Errorf("--mix %q: want %s, %s, %s or %s", o.mix, mixCloud, mixSingle, mixRealistic, mixAdversarial)
	}
	instances, err := mintAll(key, o, now)
	if err != nil {
		return nil, err
	}

	rng := mrand.New(mrand.NewPCG(1, 2)) // fixed seed: every run sends the same mix
	reqs := make([]request, o.requests)
	for i := range reqs {
		in := instances[rng.IntN(len(instances))]
		if o.sequential {
			in = instances[i%len(instances)]
		}
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
	return encodeBody(rt, headers, backend, i, "")
}

// encodeBody is encode with a request body, carried as Envoy's
// with_request_body (pack_as_bytes) sends it: raw bytes and their
// content-length.
func encodeBody(rt route, headers map[string]string, backend string, i int, body string) ([]byte, error) {
	if body != "" {
		headers["content-length"] = strconv.Itoa(len(body))
	}
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
	if body != "" {
		req.Attributes.Request.Http.RawBody = []byte(body)
		req.Attributes.Request.Http.Size = int64(len(body))
	}
	if backend != "" {
		req.Attributes.ContextExtensions = map[string]string{"backend": backend}
	}
	return proto.Marshal(req)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := jwks.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// mintAll mints one token per instance, on every core: a memory run needs
// 100k tokens and an RSA signature costs about a millisecond.
func mintAll(key crypto.Signer, o mixOptions, now time.Time) ([]instance, error) {
	instances := make([]instance, o.tokens)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		firstErr atomic.Value
	)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(instances) || firstErr.Load() != nil {
					return
				}
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
				tok, err := token.Mint(key, token.MintClaims{
					Issuer:   o.issuer,
					Subject:  id,
					Audience: []string{o.audience},
					Scopes:   grantedScopes,
					Realm:    "self-managed",
					IssuedAt: now,
					TTL:      time.Hour + o.lifetime,
					JTI:      fmt.Sprintf("%sload-%d", o.jtiPrefix, i),
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				instances[i] = instance{id, tok}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return instances, nil
}
