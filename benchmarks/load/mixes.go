package main

import (
	"crypto"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"time"
)

// Named mixes (--mix). "cloud" is the original mix (buildMix); the others
// are the honest workloads of benchmarks/README.md:
//
//	single       one allowed request repeated: the ceiling case
//	realistic    many instances, a distinct global user id per request
//	             (hundreds of thousands), two tokens per instance (the hourly
//	             rotation: same grant, new jti/iat), the AI gateway's route
//	             mix incl. proxy routes, --deny-percent (default 15) denials
//	             of four kinds, varied seat counts
//	adversarial  garbage tokens with random paths and header values: every
//	             request must be denied, cheaply
const (
	mixCloud       = "cloud"
	mixSingle      = "single"
	mixRealistic   = "realistic"
	mixAdversarial = "adversarial"
)

// weightedRoute is a route of the realistic mix, its share of traffic and
// the JSON request body it sends ("" for none).
type weightedRoute struct {
	route
	weight int
	body   string
}

// The bodies of the code suggestions route (/v4/code/suggestions): its
// request-body rule picks the unit primitive from the first prompt
// component's type (complete_code for a completion, generate_code for a
// generation), as the AI gateway does.
const (
	completionBody = `{"prompt_components":[{"type":"code_editor_completion","payload":{"file_name":"main.go","content_above_cursor":"package main\n\nfunc main() {\n\t","content_below_cursor":"\n}\n","language_identifier":"go"}}]}`
	generationBody = `{"prompt_components":[{"type":"code_editor_generation","payload":{"file_name":"main.go","content_above_cursor":"// sort the users by name\n","content_below_cursor":"","language_identifier":"go"}}]}`
)

// realisticRoutes approximates the AI gateway's traffic: code suggestions
// dominate (the v2 routes and the v4 route whose body decides the unit
// primitive), then chat and generations, then the proxy routes (the unit
// primitive in a header) and documentation search.
var realisticRoutes = []weightedRoute{
	{route{"POST", "/v2/code/completions", "complete_code", ""}, 40, ""},
	{route{"POST", "/v4/code/suggestions", "complete_code", ""}, 15, completionBody},
	{route{"POST", "/v2/code/generations", "generate_code", ""}, 5, ""},
	{route{"POST", "/v4/code/suggestions", "generate_code", ""}, 5, generationBody},
	{route{"POST", "/v1/chat/agent", "duo_chat", ""}, 15, ""},
	{route{"POST", "/v1/search/gitlab-docs", "documentation_search", ""}, 5, ""},
	{route{"POST", "/v1/proxy/anthropic/v1/messages", "review_merge_request", "review_merge_request"}, 10, ""},
	{route{"POST", "/v1/proxy/openai/v1/chat/completions", "review_merge_request", "review_merge_request"}, 5, ""},
}

func pickRoute(rng *mrand.Rand) weightedRoute {
	total := 0
	for _, r := range realisticRoutes {
		total += r.weight
	}
	n := rng.IntN(total)
	for _, r := range realisticRoutes {
		if n < r.weight {
			return r
		}
		n -= r.weight
	}
	return realisticRoutes[0]
}

func baseHeaders(tok, instanceID, user, seats string) map[string]string {
	h := map[string]string{
		"x-gitlab-authentication-type": "oidc",
		"x-gitlab-instance-id":         instanceID,
		"x-gitlab-realm":               "self-managed",
		"x-gitlab-global-user-id":      user,
		"x-gitlab-duo-seat-count":      seats,
		"x-gitlab-host-name":           "gitlab.example.com",
		"x-gitlab-version":             "18.9.0",
		"content-type":                 "application/json",
		"user-agent":                   "ccauthz-load/1",
	}
	if tok != "" {
		h["authorization"] = "Bearer " + tok
	}
	return h
}

// buildSingle is one allowed request, repeated.
func buildSingle(o mixOptions, key crypto.Signer, now time.Time) ([]request, error) {
	o.tokens = 1
	instances, err := mintAll(key, o, now)
	if err != nil {
		return nil, err
	}
	in := instances[0]
	rt := allowedRoutes[0]
	b, err := encode(rt, baseHeaders(in.token, in.id, "user-1", "42"), o.backend, 0)
	if err != nil {
		return nil, err
	}
	return []request{{name: "allow " + rt.path, wantAllow: true, encoded: b}}, nil
}

// buildRealistic is the realistic mix (see the constants above).
func buildRealistic(o mixOptions, key crypto.Signer, now time.Time) ([]request, error) {
	// Two tokens per instance: the one minted an hour ago and its
	// replacement (same grant, new jti and iat), both live.
	old := o
	old.jtiPrefix = "old-"
	oldTokens, err := mintAll(key, old, now.Add(-50*time.Minute))
	if err != nil {
		return nil, err
	}
	newTokens, err := mintAll(key, o, now)
	if err != nil {
		return nil, err
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	seatCounts := []string{"5", "42", "250", "1200", "8000"}
	reqs := make([]request, o.requests)
	for i := range reqs {
		k := rng.IntN(len(newTokens))
		in := newTokens[k]
		if rng.IntN(2) == 0 {
			in = oldTokens[k]
		}
		// A distinct global user id per request: GitLab sends
		// Base64(SHA256(instance, user, salt)); any opaque value does.
		user := fmt.Sprintf("u%d-%d", k, rng.IntN(1_000_000))
		wr := pickRoute(rng)
		rt, body := wr.route, wr.body
		h := baseHeaders(in.token, in.id, user, seatCounts[k%len(seatCounts)])
		name, want := "allow "+rt.path, true
		if rng.IntN(100) < o.denyPercent {
			want = false
			switch rng.IntN(4) {
			case 0:
				rt, body = route{"POST", "/v1/chat/troubleshoot_job", "troubleshoot_job", ""}, ""
				name = "deny scope " + rt.path
			case 1:
				h["x-gitlab-instance-id"] = "not-" + in.id
				name = "deny header mismatch"
			case 2:
				delete(h, "authorization")
				name = "deny no authorization"
			default:
				h["authorization"] = "Bearer " + garbageToken(rng)
				name = "deny garbage token"
			}
		}
		if rt.upHeader != "" {
			h["x-gitlab-unit-primitive"] = rt.upHeader
		}
		b, err := encodeBody(rt, h, o.backend, i, body)
		if err != nil {
			return nil, err
		}
		reqs[i] = request{name: name, wantAllow: want, encoded: b}
	}
	return reqs, nil
}

// buildAdversarial is garbage tokens with random paths and headers.
func buildAdversarial(o mixOptions) ([]request, error) {
	rng := mrand.New(mrand.NewPCG(5, 6))
	reqs := make([]request, o.requests)
	for i := range reqs {
		path := "/" + randomWord(rng) + "/" + randomWord(rng)
		if rng.IntN(2) == 0 {
			path = allowedRoutes[rng.IntN(len(allowedRoutes))].path
		}
		h := baseHeaders(garbageToken(rng), randomWord(rng), randomWord(rng), fmt.Sprint(rng.IntN(1_000_000)))
		h["x-gitlab-unit-primitive"] = randomWord(rng)
		h["x-"+randomWord(rng)] = randomWord(rng)
		b, err := encode(route{"POST", path, "", ""}, h, o.backend, i)
		if err != nil {
			return nil, err
		}
		reqs[i] = request{name: "deny adversarial", wantAllow: false, encoded: b}
	}
	return reqs, nil
}

// garbageToken is a JWT-shaped string whose signature cannot verify.
func garbageToken(rng *mrand.Rand) string {
	part := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"` + part(6) + `"}`))
	return header + "." + part(180) + "." + part(256)
}

func randomWord(rng *mrand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 4+rng.IntN(12))
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}
