package ratelimit

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// smallManifest has limits small enough to trip in a test.
const smallManifest = `backend: ai_gateway
rate_limit:
  default_class: standard
  auth_failures: {requests_per_unit: 2, unit: minute}
  classes:
    - name: code_suggestions
      unit_primitives: [complete_code]
      per_instance: {requests_per_unit: 3, unit: hour, seat_buckets: {large: {requests_per_unit: 5, unit: hour}}}
      per_user: {requests_per_unit: 2, unit: hour}
    - name: chat
      unit_primitives: [duo_chat]
      per_instance: {requests_per_unit: 2, unit: hour}
routes:
  - {id: completions, methods: [POST], path: /v2/code/completions, unit_primitives: [complete_code]}
  - {id: chat, methods: [POST], path: /v1/chat/agent, unit_primitives: [duo_chat]}
`

func smallPlan(t testing.TB) *Plan {
	t.Helper()
	m, err := manifest.Parse("small.yaml", []byte(smallManifest), catalog.Example())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan("aigw", m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func allowed(class, instance, user, seats string) *policy.Decision {
	return &policy.Decision{Allow: true, Status: 200, Reason: policy.ReasonAllowed, RateLimit: policy.RateLimit{Entries: map[string]string{
		EntryBackend: "ai_gateway", EntryRateClass: class, EntryRealm: "self-managed", EntrySeatBucket: seats,
		EntryInstanceID: instance, EntryGlobalUserID: user, EntryUnitPrim: "complete_code",
	}}}
}

func TestLimiterPerInstanceAndPerUser(t *testing.T) {
	p := smallPlan(t)
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(1000, func() time.Time { return now })
	// Per instance: 3 an hour for instance a, whatever its users.
	for i, user := range []string{"u1", "u2", "u3"} {
		if v := l.Check(p, allowed("code_suggestions", "a", user, "any"), "c"); v.Limited {
			t.Fatalf("request %d limited: %+v", i+1, v)
		}
	}
	v := l.Check(p, allowed("code_suggestions", "a", "u4", "any"), "c")
	want := "limit=per_instance,backend=ai_gateway,rate_class=code_suggestions,realm=self-managed,seat_bucket=any,instance_id=a"
	if !v.Limited || v.Kind != KindPerInstance || v.Descriptor != want {
		t.Fatalf("4th request: %+v, want per_instance %s", v, want)
	}
	if v.RetryAfter < 19*time.Minute || v.RetryAfter > 20*time.Minute {
		t.Errorf("retry after %v, want 20m (3 an hour)", v.RetryAfter)
	}
	// Another instance and another class keep their own buckets.
	if v := l.Check(p, allowed("code_suggestions", "b", "u9", "any"), "c"); v.Limited {
		t.Fatalf("instance b limited: %+v", v)
	}
	if v := l.Check(p, allowed("chat", "a", "u1", "any"), "c"); v.Limited {
		t.Fatalf("chat of instance a limited: %+v", v)
	}
	// Per user: 2 an hour, across instances.
	l.Check(p, allowed("code_suggestions", "c", "heavy", "large"), "c")
	l.Check(p, allowed("code_suggestions", "d", "heavy", "large"), "c")
	if v := l.Check(p, allowed("code_suggestions", "e", "heavy", "large"), "c"); !v.Limited || v.Kind != KindPerUser {
		t.Fatalf("3rd request of user heavy: %+v, want per_user", v)
	}
	// Unknown identities and the saas realm are not limited.
	for i := 0; i < 10; i++ {
		d := allowed("code_suggestions", Unknown, Unknown, "any")
		if v := l.Check(p, d, "c"); v.Limited {
			t.Fatalf("unknown identities limited: %+v", v)
		}
		d = allowed("code_suggestions", "gitlab-com", Unknown, "any")
		d.RateLimit.Entries[EntryRealm] = "saas"
		if v := l.Check(p, d, "c"); v.Limited {
			t.Fatalf("saas instance limited: %+v", v)
		}
	}
	// The bucket refills: 20 minutes later instance a may send one more.
	now = now.Add(20 * time.Minute)
	if v := l.Check(p, allowed("code_suggestions", "a", "u5", "any"), "c"); v.Limited {
		t.Fatalf("after refill: %+v", v)
	}
	if got := metricValue(t, l, "ccauthz_rate_limited_total", "per_instance"); got != 1 {
		t.Errorf("per_instance limited counter %v, want 1", got)
	}
	if got := metricValue(t, l, "ccauthz_rate_limited_total", "per_user"); got != 1 {
		t.Errorf("per_user limited counter %v, want 1", got)
	}
}

func TestLimiterAuthFailures(t *testing.T) {
	p := smallPlan(t)
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(1000, func() time.Time { return now })
	unauth := &policy.Decision{Status: 401, Reason: policy.ReasonInvalidToken}
	bad := Client(map[string]string{"x-gitlab-instance-id": "bad"}, "10.0.0.1")
	for i := 0; i < 2; i++ {
		if v := l.Check(p, unauth, bad); v.Limited {
			t.Fatalf("401 %d limited", i+1)
		}
	}
	v := l.Check(p, unauth, bad)
	if !v.Limited || v.Kind != KindAuthFailures || v.Descriptor != "limit=auth_failures,backend=ai_gateway,client=instance:bad" {
		t.Fatalf("3rd 401: %+v", v)
	}
	// Same address, other instance id: its own budget. No header: the address.
	if v := l.Check(p, unauth, Client(map[string]string{"x-gitlab-instance-id": "good"}, "10.0.0.1")); v.Limited {
		t.Fatal("another instance behind the same address was limited")
	}
	if got := Client(nil, "10.0.0.1"); got != "address:10.0.0.1" {
		t.Errorf("client without instance id: %q", got)
	}
	for i := 0; i < 5; i++ {
		if v := l.Check(p, unauth, Client(nil, "")); v.Limited {
			t.Fatal("a client with neither instance id nor address was counted")
		}
	}
	// Allowed requests of the exhausted client still pass, and 403s do not count.
	if v := l.Check(p, allowed("chat", "bad", "u", "any"), bad); v.Limited {
		t.Fatal("an allowed request of a client with exhausted auth failures was limited")
	}
	forbidden := &policy.Decision{Status: 403, Reason: policy.ReasonInsufficientScope}
	if v := l.Check(p, forbidden, bad); v.Limited {
		t.Fatal("a 403 was counted as an authentication failure")
	}
}

func TestVerdictDeny(t *testing.T) {
	d := *allowed("code_suggestions", "a", "u", "any")
	d.Route, d.Headers = "completions", map[string]string{"x-ccauthz-decision": "allow"}
	out := Verdict{Limited: true, Kind: KindPerUser, RetryAfter: 1500 * time.Millisecond}.Deny(d)
	if out.Allow || out.Status != 429 || out.Reason != policy.ReasonRateLimited || out.Headers != nil {
		t.Fatalf("deny: %+v", out)
	}
	if out.ResponseHeaders["retry-after"] != "2" || out.Body["detail"] != RateLimitedBody {
		t.Errorf("retry-after %q body %v", out.ResponseHeaders["retry-after"], out.Body)
	}
	if out.Route != "completions" || out.RateLimit.Entries[EntryInstanceID] != "a" || len(out.HeadersToRemove) != 6 {
		t.Errorf("kept fields: %+v", out)
	}
	if got := (Verdict{Limited: true}).Deny(d).ResponseHeaders["retry-after"]; got != "1" {
		t.Errorf("retry-after of a zero wait %q, want 1", got)
	}
}

func TestLimiterConcurrentExact(t *testing.T) {
	p := smallPlan(t)
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(1000, func() time.Time { return now })
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				// Distinct users, one instance in the large bucket (5 an hour).
				if !l.Check(p, allowed("code_suggestions", "shared", strings.Repeat("u", g+1)+string(rune('a'+i%26)), "large"), "c").Limited {
					ok.Add(1)
				}
			}
		}(g)
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("%d of 400 concurrent requests passed, want exactly the large bucket's 5", ok.Load())
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	p := smallPlan(t)
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(shardCount*2, func() time.Time { return now })
	for i := 0; i < 20_000; i++ {
		l.Check(p, allowed("code_suggestions", "i"+strings.Repeat("x", i%7)+string(rune(i)), Unknown, "any"), "c")
	}
	if n := l.buckets.Len(); n > shardCount*2 {
		t.Fatalf("%d buckets held, bound %d", n, shardCount*2)
	}
	if got := metricValue(t, l, "ccauthz_rate_limit_buckets", ""); got != float64(l.buckets.Len()) || got == 0 {
		t.Fatalf("bucket gauge %v, held %d", got, l.buckets.Len())
	}
}

// metricValue gathers the limiter's collectors and returns the value of
// metric name (with kind label kind, "" for none).
func metricValue(t *testing.T, l *Limiter, name, kind string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := kind == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "kind" && lp.GetValue() == kind {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
