package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ccauthz/ccauthz/policy/identity"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// TestCacheFillsEachRequestsIdentity: requests of one grant on one route
// share a cached decision however their identity headers differ, and each
// gets its own identity entries.
func TestCacheFillsEachRequestsIdentity(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	ctx := context.Background()
	const n = 200
	for i := range n {
		in := aiGatewayInput()
		in.Headers["x-gitlab-global-user-id"] = fmt.Sprintf("user-%d", i)
		in.Headers["x-gitlab-duo-seat-count"] = fmt.Sprint(1 + i*10)
		d, err := p.Decide(ctx, in)
		if err != nil || !d.Allow {
			t.Fatalf("request %d: %+v %v", i, d, err)
		}
		wantBucket := identity.Bucket(int64(1+i*10), manifest.SeatBuckets{SmallMax: manifest.DefaultSmallMax, MediumMax: manifest.DefaultMediumMax})
		e := d.RateLimit.Entries
		if e["global_user_id"] != in.Headers["x-gitlab-global-user-id"] || e["seat_bucket"] != wantBucket ||
			e["instance_id"] != "inst-1" || e["realm"] != "saas" {
			t.Fatalf("request %d: entries %v, want user %s bucket %s", i, e, in.Headers["x-gitlab-global-user-id"], wantBucket)
		}
		if d.Identity.GlobalUserID.From != identity.FromHeader || d.Identity.InstanceID.From != identity.FromClaim {
			t.Fatalf("request %d: provenance %v", i, d.Identity)
		}
	}
	if s := p.Stats(); s.Misses != 1 || s.Hits != n-1 {
		t.Errorf("one grant on one route must be one cache entry: %+v", s)
	}
}

// TestSeatCountHeaderCannotRaiseBucket is the regression test for
// X-Gitlab-Duo-Seat-Count: 999999 buying the large bucket: the token's
// duo_seat_count decides, cold and cached.
func TestSeatCountHeaderCannotRaiseBucket(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	for pass := range 2 {
		in := aiGatewayInput()
		in.Token.Claims["duo_seat_count"] = float64(20)
		in.Headers["x-gitlab-duo-seat-count"] = "999999"
		d, err := p.Decide(context.Background(), in)
		if err != nil || !d.Allow {
			t.Fatalf("%+v %v", d, err)
		}
		if got := d.RateLimit.Entries["seat_bucket"]; got != "small" {
			t.Errorf("pass %d: seat_bucket %q with a 20-seat token and a forged header, want small", pass, got)
		}
		if !d.Identity.SeatBucket.HeaderIgnored {
			t.Errorf("pass %d: the contradicting header must be reported as ignored", pass)
		}
	}
}

// TestMismatchAgreesWithRego: the bindings' outcome the cache keys on
// (identity.Mismatch) is the generated header_mismatch rule's, for every
// generated case and variations of its bound headers and claims.
func TestMismatchAgreesWithRego(t *testing.T) {
	for _, name := range manifest.ExampleNames() {
		t.Run(name, func(t *testing.T) {
			p := buildExample(t, name, BuildOptions{})
			q, err := rego.New(rego.Query("x := data.ccauthz.generated.header_mismatch"), rego.Compiler(p.compiler)).
				PrepareForEval(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			variants := []func(in *Input){
				func(*Input) {},
				func(in *Input) { in.Headers["x-gitlab-realm"] = "other" },
				func(in *Input) { delete(in.Headers, "x-gitlab-instance-id") },
				func(in *Input) { in.Headers["x-gitlab-instance-id"] = "" },
				func(in *Input) { in.Headers["x-gitlab-global-user-id"] = "other" },
				func(in *Input) { in.Token.Kind = "user" },
				func(in *Input) {
					in.Token.Kind = "user"
					if in.Token.Claims != nil {
						in.Token.Claims["sub"] = in.Headers["x-gitlab-global-user-id"]
					}
				},
				func(in *Input) {
					if in.Token.Claims != nil {
						in.Token.Claims["gitlab_instance_id"] = float64(3)
					}
				},
				func(in *Input) {
					if in.Token.Claims != nil {
						in.Token.Claims["gitlab_realm"] = ""
						in.Token.Claims["sub"] = nil
					}
				},
			}
			checked := 0
			for _, c := range p.Generated().Cases {
				for vi, vary := range variants {
					in := caseInput(t, c)
					vary(in)
					id := p.identify(in)
					v, err := in.value(&id)
					if err != nil {
						t.Fatal(err)
					}
					rs, err := q.Eval(context.Background(), rego.EvalParsedInput(v))
					if err != nil {
						t.Fatal(err)
					}
					want := ""
					if len(rs) == 1 {
						want, _ = rs[0].Bindings["x"].(string)
					}
					got := identity.Mismatch(p.bindings, in.Token.Kind, in.Token.Claims, in.Headers)
					if got != want {
						t.Errorf("%s/%s variant %d: Mismatch %q, Rego header_mismatch %q", c.Route, c.Name, vi, got, want)
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("no case checked")
			}
		})
	}
}

// TestExtraModuleReadingIdentityIsKeyed: an extra module that decides on
// input.identity makes the identity values part of the cache key.
func TestExtraModuleReadingIdentityIsKeyed(t *testing.T) {
	dir := writeExtra(t, map[string]string{"big.rego": `package ccauthz.extra

deny contains "Large instances go elsewhere" if input.identity.seat_bucket == "large"
`})
	p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
	if !p.Stats().ReadsIdentity {
		t.Fatalf("extra module reads input.identity: %+v", p.Stats())
	}
	ctx := context.Background()
	in := aiGatewayInput()
	if d, _ := p.Decide(ctx, in); !d.Allow {
		t.Fatalf("medium bucket must be allowed: %+v", d)
	}
	in.Headers["x-gitlab-duo-seat-count"] = "5000"
	if d, _ := p.Decide(ctx, in); d.Allow || d.Reason != ReasonExtraPolicyDeny {
		t.Fatalf("large bucket must not be served the cached allow: %+v", d)
	}
	if !strings.Contains(p.Stats().HeadersBound[0], "x-gitlab") {
		t.Errorf("bindings still keyed by outcome: %+v", p.Stats())
	}
}

// TestGarbageTokensShareDecisions: tokens that did not verify (and carry no
// claims) are keyed by their status and reason, not their hash, so a stream
// of distinct garbage tokens on one route is one cache entry.
func TestGarbageTokensShareDecisions(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	ctx := context.Background()
	for i := range 50 {
		in := aiGatewayInput()
		in.Token = TokenInput{Status: TokenInvalid, Reason: "bad_signature", Hash: fmt.Sprintf("%064d", i)}
		d, err := p.Decide(ctx, in)
		if err != nil || d.Allow || d.Status != 401 || d.Reason != ReasonInvalidToken {
			t.Fatalf("garbage token %d: %+v %v", i, d, err)
		}
	}
	if s := p.Stats(); s.Misses != 1 || s.Hits != 49 {
		t.Errorf("50 garbage tokens on one route: %+v, want 1 miss and 49 hits", s)
	}
	// A token with claims that did not verify (e.g. expired) is keyed on the
	// claims the policy reads, like a valid one: not on its hash.
	in := aiGatewayInput()
	in.Token.Status, in.Token.Reason = TokenInvalid, "expired"
	k1, ok1 := p.cacheKey(in, &identity.Identity{})
	in.Token.Hash = strings.Repeat("f", 64)
	k2, ok2 := p.cacheKey(in, &identity.Identity{})
	in.Token.Claims["scopes"] = []any{}
	k3, ok3 := p.cacheKey(in, &identity.Identity{})
	if !ok1 || !ok2 || !ok3 || k1 != k2 || k1 == k3 {
		t.Error("an invalid token with claims must be keyed on the claims the policy reads")
	}
}
