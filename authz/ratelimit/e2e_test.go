package ratelimit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/ratelimit"
	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// e2eManifest has limits small enough to trip within a few requests, per
// day so that the engine's fixed windows are not crossed during a run.
const e2eManifest = `backend: ai_gateway
rate_limit:
  default_class: standard
  auth_failures: {requests_per_unit: 2, unit: day}
  classes:
    - name: code_suggestions
      unit_primitives: [complete_code]
      per_instance:
        requests_per_unit: 3
        unit: day
        seat_buckets: {large: {requests_per_unit: 5, unit: day}}
    - name: chat
      unit_primitives: [duo_chat]
      per_user: {requests_per_unit: 2, unit: day}
      per_instance: {requests_per_unit: 100, unit: day}
routes:
  - {id: completions, methods: [POST], path: /v2/code/completions, unit_primitives: [complete_code]}
  - {id: chat, methods: [POST], path: /v1/chat/agent, unit_primitives: [duo_chat]}
`

// stack is ccauthz in-process: the real policy of e2eManifest and a real
// verifier trusting a dev issuer.
type stack struct {
	srv  *server.Server
	plan *ratelimit.Plan
	is   *devissuer.Issuer
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newStack(t *testing.T, limiter *ratelimit.Limiter, opts server.Options) *stack {
	t.Helper()
	cat := catalog.Example()
	m, err := manifest.Parse("e2e.yaml", []byte(e2eManifest), cat)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Build(cat, m, policy.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ratelimit.NewPlan("ai_gateway", m)
	if err != nil {
		t.Fatal(err)
	}
	is, err := devissuer.Ensure(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ver, err := token.NewVerifier([]token.IssuerConfig{is.IssuerConfig()}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ver.Start(ctx)
	t.Cleanup(ver.Close)
	waitCtx, waitCancel := context.WithTimeout(ctx, 5*time.Second)
	defer waitCancel()
	if err := ver.WaitReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	srv, err := server.New(ctx, server.Deps{
		Verifier: ver,
		Build: func(context.Context) (*server.Snapshot, error) {
			return server.NewSnapshot([]*server.Backend{{
				Name: "ai_gateway", Audience: p.Audience(), Decider: p, RateLimits: plan,
			}}, time.Now())
		},
		Logger:      slog.New(slog.NewJSONHandler(logs, nil)),
		Metrics:     server.NewMetrics(server.BuildInfo{Version: "test"}, nil, time.Now),
		RateLimiter: limiter,
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{srv: srv, plan: plan, is: is, logs: logs}
}

// call is one request from a GitLab instance.
type call struct {
	path, instance, realm, user, seats string
	badToken                           bool
}

func (s *stack) check(t *testing.T, c call) *authv3.CheckResponse {
	t.Helper()
	scope := "complete_code"
	if strings.Contains(c.path, "chat") {
		scope = "duo_chat"
	}
	tok, err := s.is.Mint(c.instance, c.realm, []string{scope}, []string{"gitlab-ai-gateway"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.badToken {
		tok += "x"
	}
	h := map[string]string{
		"authorization": "Bearer " + tok, "x-gitlab-authentication-type": "oidc",
		"x-gitlab-instance-id": c.instance, "x-gitlab-realm": c.realm,
	}
	if c.user != "" {
		h["x-gitlab-global-user-id"] = c.user
	}
	if c.seats != "" {
		h["x-gitlab-duo-seat-count"] = c.seats
	}
	resp, err := s.srv.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: c.path, Host: "cloud.gitlab.com", Headers: h}},
		ContextExtensions: map[string]string{"backend": "ai_gateway"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestEndToEndEnvoyRatelimit runs the whole distributed hand-off with the
// real engine: ccauthz decides, its dynamic metadata becomes descriptors
// through the generated Envoy actions (as Envoy's metadata action builds
// them), and envoyproxy/ratelimit + Redis, loaded with the generated
// configuration, answers.
func TestEndToEndEnvoyRatelimit(t *testing.T) {
	s := newStack(t, nil, server.Options{}) // no local limiter: the engine decides
	cfg, err := ratelimit.GenerateConfig(ratelimit.DefaultDomain, []*ratelimit.Plan{s.plan})
	if err != nil {
		t.Fatal(err)
	}
	e := ratelimit.StartEngine(t, cfg)
	actions := ratelimit.EnvoyRateLimits()

	send := func(c call) rlsv3.RateLimitResponse_Code {
		t.Helper()
		resp := s.check(t, c)
		if resp.GetOkResponse() == nil {
			t.Fatalf("%+v: ccauthz denied: %v", c, resp.GetDeniedResponse())
		}
		ds, err := ratelimit.EnvoyDescriptors(actions, ratelimit.RequestContext{
			DynamicMetadata: map[string]*structpb.Struct{ratelimit.ExtAuthzNamespace: resp.GetDynamicMetadata()},
		})
		if err != nil {
			t.Fatal(err)
		}
		// Every entry is always a non-empty string: no descriptor is dropped.
		if len(ds) != len(actions) {
			t.Fatalf("%+v: %d descriptors from %d rate_limits: ccauthz's metadata dropped one", c, len(ds), len(actions))
		}
		return e.Should(t, ratelimit.DefaultDomain, ds)
	}
	const ok, over = rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT
	expect := func(what string, c call, want rlsv3.RateLimitResponse_Code) {
		t.Helper()
		if got := send(c); got != want {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	completions := func(instance string) call {
		return call{path: "/v2/code/completions", instance: instance, realm: "self-managed"}
	}
	chat := func(instance, user string) call {
		return call{path: "/v1/chat/agent", instance: instance, realm: "self-managed", user: user}
	}

	// Per instance: 3 a day for code suggestions.
	for i := 1; i <= 3; i++ {
		expect("instance A, completion within the limit", completions("inst-a"), ok)
	}
	expect("instance A, 4th completion", completions("inst-a"), over)
	expect("instance B keeps its own counter", completions("inst-b"), ok)
	// Another class of the same instance is independent.
	expect("instance A, chat", chat("inst-a", "user-1"), ok)
	// Per user: 2 a day for chat, across instances.
	expect("user 1, 2nd chat", chat("inst-a", "user-1"), ok)
	expect("user 1, 3rd chat (via instance B)", chat("inst-b", "user-1"), over)
	expect("user 2 keeps its own counter", chat("inst-b", "user-2"), ok)
	// Seat buckets: a large instance gets 5 a day.
	large := completions("inst-c")
	large.seats = "5000"
	for i := 1; i <= 5; i++ {
		expect("large instance within its bucket's limit", large, ok)
	}
	expect("large instance, 6th completion", large, over)
	// gitlab.com shares one instance id: the saas realm is not limited per instance.
	saas := call{path: "/v2/code/completions", instance: "gitlab-com", realm: "saas"}
	for i := 1; i <= 5; i++ {
		expect("saas instance", saas, ok)
	}
}

// TestEndToEndLocalLimiter runs the same limits through ccauthz's embedded
// limiter: the 4th completion of an instance is answered 429 with
// Retry-After, the tripped descriptor in metadata and the decision log, and
// repeated 401s of one client become 429.
func TestEndToEndLocalLimiter(t *testing.T) {
	s := newStack(t, ratelimit.NewLimiter(1000, nil), server.Options{})
	c := call{path: "/v2/code/completions", instance: "inst-a", realm: "self-managed"}
	for i := 1; i <= 3; i++ {
		if resp := s.check(t, c); resp.GetOkResponse() == nil {
			t.Fatalf("completion %d denied: %v", i, resp.GetDeniedResponse())
		}
	}
	resp := s.check(t, c)
	denied := resp.GetDeniedResponse()
	if denied.GetStatus().GetCode() != 429 {
		t.Fatalf("4th completion: %v, want 429", resp)
	}
	headers := map[string]string{}
	for _, h := range denied.GetHeaders() {
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if ra := headers["retry-after"]; ra == "" || ra == "0" {
		t.Errorf("retry-after %q", ra)
	}
	if !strings.Contains(denied.GetBody(), "Too many requests") {
		t.Errorf("body %q", denied.GetBody())
	}
	md := resp.GetDynamicMetadata().GetFields()
	wantDesc := "limit=per_instance,backend=ai_gateway,rate_class=code_suggestions,realm=self-managed,seat_bucket=any,instance_id=inst-a"
	if md["reason"].GetStringValue() != "rate_limited" || md["ratelimited_descriptor"].GetStringValue() != wantDesc {
		t.Errorf("metadata reason %q descriptor %q", md["reason"].GetStringValue(), md["ratelimited_descriptor"].GetStringValue())
	}
	if !strings.Contains(s.logs.String(), `"ratelimited_descriptor":"`+wantDesc+`"`) {
		t.Error("the decision log does not name the tripped descriptor")
	}
	if resp := s.check(t, call{path: "/v2/code/completions", instance: "inst-b", realm: "self-managed"}); resp.GetOkResponse() == nil {
		t.Fatal("instance B was limited by instance A's requests")
	}
	// Auth failures: 2 a day per client, then 429 instead of 401.
	bad := call{path: "/v2/code/completions", instance: "inst-x", realm: "self-managed", badToken: true}
	for i := 1; i <= 2; i++ {
		if got := s.check(t, bad).GetDeniedResponse().GetStatus().GetCode(); got != 401 {
			t.Fatalf("bad token %d: %v, want 401", i, got)
		}
	}
	if got := s.check(t, bad).GetDeniedResponse().GetStatus().GetCode(); got != 429 {
		t.Fatalf("3rd bad token: %v, want 429", got)
	}
	if resp := s.check(t, call{path: "/v2/code/completions", instance: "inst-x", realm: "self-managed"}); resp.GetOkResponse() == nil {
		t.Fatal("a valid request of a client past its auth-failure limit was refused")
	}
}

// TestEndToEndLocalLimiterDryRun: in dry-run a 429 is reported, not
// enforced, like any other denial.
func TestEndToEndLocalLimiterDryRun(t *testing.T) {
	s := newStack(t, ratelimit.NewLimiter(1000, nil), server.Options{DryRun: true})
	c := call{path: "/v2/code/completions", instance: "inst-a", realm: "self-managed"}
	for i := 1; i <= 3; i++ {
		s.check(t, c)
	}
	resp := s.check(t, c)
	md := resp.GetDynamicMetadata().GetFields()
	if resp.GetOkResponse() == nil || md["would_deny_reason"].GetStringValue() != "rate_limited" || md["ratelimited_descriptor"].GetStringValue() == "" {
		t.Fatalf("dry-run: %v", resp)
	}
}

// TestEngineLoadsExampleConfig loads the generated configuration of the
// bundled example manifests (the golden file) into the real engine: the
// per-user limit of code suggestions (60 a minute) trips at the 61st
// request, and the saas realm is exempt from the per-instance limit.
func TestEngineLoadsExampleConfig(t *testing.T) {
	cfg, err := os.ReadFile("testdata/ratelimit_config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := ratelimit.StartEngine(t, cfg)
	desc := func(kv ...string) *rlcommonv3.RateLimitDescriptor {
		d := &rlcommonv3.RateLimitDescriptor{}
		for i := 0; i+1 < len(kv); i += 2 {
			d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
		}
		return d
	}
	// envoyproxy/ratelimit counts fixed windows: a run that crosses a minute
	// boundary starts a new window, so it is repeated once with a new user.
	for attempt := 1; ; attempt++ {
		window := time.Now().Truncate(time.Minute)
		user := desc("limit", "per_user", "backend", "ai_gateway", "rate_class", "code_suggestions", "seat_bucket", "any",
			"global_user_id", fmt.Sprint("u-", attempt))
		for i := 1; i <= 60; i++ {
			if got := e.Should(t, ratelimit.DefaultDomain, []*rlcommonv3.RateLimitDescriptor{user}); got != rlsv3.RateLimitResponse_OK {
				t.Fatalf("request %d of 60 a minute: %v", i, got)
			}
		}
		got := e.Should(t, ratelimit.DefaultDomain, []*rlcommonv3.RateLimitDescriptor{user})
		if got == rlsv3.RateLimitResponse_OVER_LIMIT {
			break
		}
		if attempt == 2 || time.Now().Truncate(time.Minute).Equal(window) {
			t.Fatalf("61st request in a minute: %v, want OVER_LIMIT", got)
		}
	}
	saas := desc("limit", "per_instance", "backend", "ai_gateway", "rate_class", "chat", "realm", "saas", "seat_bucket", "any", "instance_id", "gitlab-com")
	for i := 1; i <= 400; i++ { // above chat's 300 a minute per instance
		if got := e.Should(t, ratelimit.DefaultDomain, []*rlcommonv3.RateLimitDescriptor{saas}); got != rlsv3.RateLimitResponse_OK {
			t.Fatalf("saas request %d: %v", i, got)
		}
	}
}
