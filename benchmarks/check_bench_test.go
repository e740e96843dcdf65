package benchmarks

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/jwks"
	"github.com/ccauthz/ccauthz/authz/server/assembly"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// checkBench is the whole server in-process, assembled from a config the way
// `ccauthz serve` does it: the example catalog, the AI gateway manifest (every
// route of facts §4.1), three RS256 file issuers (gitlab.com, CustomersDot and
// a self-managed instance), the real verifier and the real compiled policy.
type checkBench struct {
	a    *assembly.Assembled
	keys map[string]crypto.Signer // issuer URL → key
}

var benchIssuers = []struct{ name, iss string }{
	{"gitlab_com", "https://gitlab.com"},
	{"customers_dot", "https://customers.gitlab.com"},
	{"self_managed", "https://gitlab.example.com"},
}

func newCheckBench(b *testing.B, tokenCache int) *checkBench {
	b.Helper()
	dir := b.TempDir()
	cb := &checkBench{keys: map[string]crypto.Signer{}}
	issuersYAML := ""
	for _, is := range benchIssuers {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		doc, err := jwks.MarshalJWKS([]crypto.PublicKey{key.Public()})
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dir, is.name+".jwks.json")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			b.Fatal(err)
		}
		cb.keys[is.iss] = key
		issuersYAML += fmt.Sprintf("  - name: %s\n    issuer: %s\n    jwks_file: %s\n    kind: instance\n", is.name, is.iss, path)
	}
	cfgText := fmt.Sprintf(`catalog: embedded:example
backends:
  - name: ai_gateway
    manifest: embedded:ai_gateway
issuers:
%scaches:
  tokens: %d
logging:
  allow_sample_rate: 0
`, issuersYAML, tokenCache)
	cfg, err := config.Decode(filepath.Join(dir, "config.yaml"), []byte(cfgText))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	a, err := assembly.New(ctx, cfg, assembly.Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	if err := a.Verifier.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	cb.a = a
	return cb
}

// mint returns a token of issuer iss for instance id with scopes.
func (cb *checkBench) mint(b *testing.B, iss, id string, scopes ...string) string {
	b.Helper()
	tok, err := token.Mint(cb.keys[iss], token.MintClaims{
		Issuer: iss, Subject: id, Audience: []string{"gitlab-ai-gateway"},
		Scopes: scopes, Realm: "self-managed", TTL: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// checkRequest is a CheckRequest as Envoy sends it: the headers GitLab Rails
// sends (facts §3.1) plus Envoy's pseudo headers. Envoy builds a fresh one for
// every request, and MapRequest takes ownership of its header map, so each
// iteration builds its own; BenchmarkCheckRequestOnly measures that share.
func checkRequest(path, tok, instanceID string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"backend": "ai_gateway"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "POST", Path: path, Host: "cloud.gitlab.com", Scheme: "https", Protocol: "HTTP/2",
			Headers: map[string]string{
				":authority":                   "cloud.gitlab.com",
				":method":                      "POST",
				":path":                        path,
				"authorization":                "Bearer " + tok,
				"x-gitlab-authentication-type": "oidc",
				"x-gitlab-instance-id":         instanceID,
				"x-gitlab-realm":               "self-managed",
				"x-gitlab-global-user-id":      "W2HPShrOch8RMah8ZWsjrXtAXo+stqKsNX0exQ1rsQQ=",
				"x-gitlab-host-name":           "gitlab.example.com",
				"x-gitlab-version":             "18.9.0",
				"x-gitlab-duo-seat-count":      "250",
				"x-request-id":                 "01J0000000000000000000000",
				"user-agent":                   "gitlab-rails",
				"content-type":                 "application/json",
			},
		}},
	}}
}

const benchInstance = "8f6e4253-58ce-42b9-869c-97f5c2287ad2"

func runCheck(b *testing.B, cb *checkBench, req *authv3.CheckRequest, want codes.Code) {
	resp, err := cb.a.Server.Check(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != want {
		b.Fatalf("status %v, want %v: %v", got, want, resp)
	}
}

// BenchmarkCheckCachedToken is the steady state: a token seen before (its
// verification cached) on a request decided before (its decision cached).
func BenchmarkCheckCachedToken(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://customers.gitlab.com", benchInstance, "complete_code", "duo_chat")
	runCheck(b, cb, checkRequest("/v2/code/completions", tok, benchInstance), codes.OK)
	b.ReportAllocs()
	for b.Loop() {
		runCheck(b, cb, checkRequest("/v2/code/completions", tok, benchInstance), codes.OK)
	}
}

// BenchmarkCheckUncachedToken is a token never seen before on every request,
// of a grant seen before (a fresh jti/iat/exp, as GitLab.com mints per
// request): signature verification each time; the decision is reused (the
// policy keys it on the grant). Minting is done outside the timer, and so
// is collecting the minting's garbage: the figure is the check's alone.
func BenchmarkCheckUncachedToken(b *testing.B) {
	cb := newCheckBench(b, 0)
	const pool = 512
	toks := make([]string, pool)
	for i := range toks {
		toks[i] = cb.mint(b, "https://gitlab.com", benchInstance, "complete_code")
	}
	runtime.GC()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == pool {
			// Out of fresh tokens: mint more without counting the time.
			b.StopTimer()
			for j := range toks {
				toks[j] = cb.mint(b, "https://gitlab.com", benchInstance, "complete_code")
			}
			runtime.GC()
			i = 0
			b.StartTimer()
		}
		runCheck(b, cb, checkRequest("/v2/code/completions", toks[i], benchInstance), codes.OK)
		i++
	}
}

// BenchmarkCheckColdGrant is a token never seen before of a grant never seen
// before (a new instance each time): signature verification and a full
// policy evaluation on every request — the worst case.
func BenchmarkCheckColdGrant(b *testing.B) {
	cb := newCheckBench(b, 0)
	const pool = 512
	type tok struct{ id, tok string }
	toks := make([]tok, pool)
	n := 0
	refill := func() {
		for j := range toks {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
			n++
			toks[j] = tok{id, cb.mint(b, "https://gitlab.com", id, "complete_code")}
		}
	}
	refill()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == pool {
			b.StopTimer()
			refill()
			i = 0
			b.StartTimer()
		}
		runCheck(b, cb, checkRequest("/v2/code/completions", toks[i].tok, toks[i].id), codes.OK)
		i++
	}
}

// BenchmarkCheckDenied is a cached token asking for a unit primitive it does
// not hold: 403 with the AI gateway's body and WWW-Authenticate.
func BenchmarkCheckDenied(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://gitlab.example.com", benchInstance, "complete_code")
	runCheck(b, cb, checkRequest("/v2/code/generations", tok, benchInstance), codes.PermissionDenied)
	b.ReportAllocs()
	for b.Loop() {
		runCheck(b, cb, checkRequest("/v2/code/generations", tok, benchInstance), codes.PermissionDenied)
	}
}

var checkRequestSink *authv3.CheckRequest

// BenchmarkCheckRequestOnly is the cost of building the CheckRequest the
// Check benchmarks build per iteration (Envoy's side of the work).
func BenchmarkCheckRequestOnly(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		checkRequestSink = checkRequest("/v2/code/completions", "x", benchInstance)
	}
}

// BenchmarkCheckAdversarial is the adversarial mix in process: a garbage
// token (JWT-shaped, an unknown kid, a signature that cannot verify) on a
// random path or a real route, with a random unit-primitive header, every
// request different. Each is denied 401; what it costs is what an attacker
// gets for free.
func BenchmarkCheckAdversarial(b *testing.B) {
	cb := newCheckBench(b, 0)
	rng := mrand.New(mrand.NewPCG(5, 6))
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789-_"
		w := make([]byte, 4+rng.IntN(12))
		for i := range w {
			w[i] = letters[rng.IntN(len(letters))]
		}
		return string(w)
	}
	part := func(n int) string {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return base64.RawURLEncoding.EncodeToString(p)
	}
	routes := []string{"/v2/code/completions", "/v1/chat/agent", "/v1/proxy/anthropic/v1/messages", "/v1/prompts/chat/explain_code"}
	type adv struct{ path, tok, up string }
	pool := make([]adv, 4096)
	for i := range pool {
		path := "/" + word() + "/" + word()
		if rng.IntN(2) == 0 {
			path = routes[rng.IntN(len(routes))]
		}
		header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"` + part(6) + `"}`))
		pool[i] = adv{path, header + "." + part(180) + "." + part(256), word()}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := pool[i%len(pool)]
		i++
		req := checkRequest(a.path, a.tok, word())
		req.Attributes.Request.Http.Headers["x-gitlab-unit-primitive"] = a.up
		runCheck(b, cb, req, codes.Unauthenticated)
	}
	b.StopTimer()
	hits, misses := decisionCacheCounts(b, cb)
	if hits+misses > 0 {
		b.ReportMetric(hits/(hits+misses), "hit-ratio")
	}
}

// decisionCacheCounts reads the decision cache's hit and miss counters from
// the server's metrics.
func decisionCacheCounts(b *testing.B, cb *checkBench) (hits, misses float64) {
	mfs, err := cb.a.Server.MetricsRegistry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "ccauthz_decision_cache_hits_total":
				hits += m.GetCounter().GetValue()
			case "ccauthz_decision_cache_misses_total":
				misses += m.GetCounter().GetValue()
			}
		}
	}
	return hits, misses
}

var wireSink []byte

// BenchmarkCheckCachedTokenWire is BenchmarkCheckCachedToken as the gRPC
// listener runs it: from the CheckRequest's bytes, decoded straight into
// the mapped request, to the answer's bytes (Server.CheckWireBytes, into a
// reused buffer as the listener's pooled one), which is what Envoy waits
// for. BenchmarkCheckCachedTokenWireUnmarshal is the
// listener's previous path on the same bytes (proto.Unmarshal into a
// CheckRequest, then CheckWire); BenchmarkCheckCachedTokenMarshal the one
// before that, Check then proto.Marshal, from a built message.
func BenchmarkCheckCachedTokenWire(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://customers.gitlab.com", benchInstance, "complete_code", "duo_chat")
	runCheck(b, cb, checkRequest("/v2/code/completions", tok, benchInstance), codes.OK)
	data, err := proto.Marshal(checkRequest("/v2/code/completions", tok, benchInstance))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if wireSink, err = cb.a.Server.CheckWireBytes(context.Background(), data, wireSink[:0]); err != nil {
			b.Fatal(err)
		}
	}
	var resp authv3.CheckResponse
	if err := proto.Unmarshal(wireSink, &resp); err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("not an allow: %v %v", &resp, err)
	}
}

func BenchmarkCheckCachedTokenWireUnmarshal(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://customers.gitlab.com", benchInstance, "complete_code", "duo_chat")
	runCheck(b, cb, checkRequest("/v2/code/completions", tok, benchInstance), codes.OK)
	data, err := proto.Marshal(checkRequest("/v2/code/completions", tok, benchInstance))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var req authv3.CheckRequest
		if err := envoy.UnmarshalCheckRequest(data, &req); err != nil {
			b.Fatal(err)
		}
		wireSink = cb.a.Server.CheckWire(context.Background(), &req)
	}
	var resp authv3.CheckResponse
	if err := proto.Unmarshal(wireSink, &resp); err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("not an allow: %v %v", &resp, err)
	}
}

func BenchmarkCheckCachedTokenMarshal(b *testing.B) {
	cb := newCheckBench(b, 0)
	tok := cb.mint(b, "https://customers.gitlab.com", benchInstance, "complete_code", "duo_chat")
	runCheck(b, cb, checkRequest("/v2/code/completions", tok, benchInstance), codes.OK)
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := cb.a.Server.Check(context.Background(), checkRequest("/v2/code/completions", tok, benchInstance))
		var err error
		if wireSink, err = proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}
