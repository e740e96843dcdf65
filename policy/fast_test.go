package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ccauthz/ccauthz/policy/identity"
)

// TestVerdictTakesFastPath checks an allowed request on a fixed route is
// answered by fast_verdict (an array Go expands), not the decision object,
// and that the expansion equals data.ccauthz.main.decision.
func TestVerdictTakesFastPath(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	ctx := context.Background()
	for _, tc := range []struct {
		name, path, up string
	}{
		{"fixed", "/v2/code/completions", ""},
		{"header", "/v1/proxy/anthropic/v1/messages", "duo_chat"},
	} {
		in := aiGatewayInput()
		in.Path = tc.path
		if tc.up != "" {
			in.Headers["x-gitlab-unit-primitive"] = tc.up
		}
		id := p.identify(in)
		v, err := in.valueOf(&id, &p.shape)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := p.query.Eval(ctx, rego.EvalParsedInput(v))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s: %v %v", tc.name, rs, err)
		}
		if _, ok := rs[0].Expressions[0].Value.(*ast.Term).Value.(*ast.Array); !ok {
			t.Fatalf("%s: verdict is %v, want the fast_verdict array", tc.name, rs[0].Expressions[0].Value)
		}
		got, err := p.eval(ctx, in, &id)
		if err != nil {
			t.Fatal(err)
		}
		rs, err = p.decision.Eval(ctx, rego.EvalParsedInput(v))
		if err != nil {
			t.Fatal(err)
		}
		want, err := parseResult(rs)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Allow || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fast decision\n %+v\ndecision\n %+v", tc.name, got, want)
		}
	}
}

// TestVerdictUnknownClassAsksDecision: a verdict whose rate class has no
// rate_limit_of entry (fast_allow undefined) is answered by DecisionQuery.
func TestVerdictUnknownClassAsksDecision(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	in := aiGatewayInput()
	want, err := p.Decide(context.Background(), in)
	if err != nil || !want.Allow {
		t.Fatalf("%+v %v", want, err)
	}
	class := want.RateLimit.Entries["rate_class"]
	if _, ok := p.fast.limits[class]; !ok {
		t.Fatalf("class %q not in %v", class, p.fast.limits)
	}
	delete(p.fast.limits, class)
	got, err := p.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fallback decision\n %+v\nwant\n %+v", got, want)
	}
}

// TestFastDecisionMalformed: a verdict of the wrong shape is an error (the
// check fails closed), never a partial decision.
func TestFastDecisionMalformed(t *testing.T) {
	c := fastConsts{backend: "b", limits: map[string]*LimitOverride{"c": nil}}
	in := aiGatewayInput()
	var id identity.Identity
	for name, src := range map[string]string{
		"short":       `["r", ["up"], "up", "c"]`,
		"route":       `[1, ["up"], "up", "c", false]`,
		"ups":         `["r", "up", "up", "c", false]`,
		"up item":     `["r", [1], "up", "c", false]`,
		"dry run":     `["r", ["up"], "up", "c", "no"]`,
		"rate class":  `["r", ["up"], "up", 7, false]`,
		"rate up":     `["r", ["up"], null, "c", false]`,
		"unknown cls": `["r", ["up"], "up", "other", false]`,
	} {
		arr := ast.MustParseTerm(src).Value.(*ast.Array)
		d, err := c.fastDecision(arr, in, &id)
		if err == nil || d.Allow {
			t.Errorf("%s: %+v %v, want an error", name, d, err)
		}
		if name == "unknown cls" && !errors.Is(err, errNoFastClass) {
			t.Errorf("%s: %v, want errNoFastClass", name, err)
		}
		if name != "unknown cls" && !strings.Contains(err.Error(), "malformed verdict") {
			t.Errorf("%s: %v", name, err)
		}
	}
	ok := ast.MustParseTerm(`["r", ["up"], "up", "c", true]`).Value.(*ast.Array)
	d, err := c.fastDecision(ok, in, &id)
	if err != nil || !d.Allow || !d.DryRun || d.Route != "r" || d.RateLimit.Entries["backend"] != "b" {
		t.Errorf("%+v %v", d, err)
	}
}

// TestSharedTransactionConcurrent evaluates uncached decisions from several
// goroutines at once: they share the policy's read transaction (run with
// -race) and must all decide alike.
func TestSharedTransactionConcurrent(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	want, err := p.Decide(context.Background(), aiGatewayInput())
	if err != nil || !want.Allow {
		t.Fatalf("%+v %v", want, err)
	}
	denied := aiGatewayInput()
	denied.Path = "/v2/code/generations"
	wantDenied, err := p.Decide(context.Background(), denied)
	if err != nil || wantDenied.Allow {
		t.Fatalf("%+v %v", wantDenied, err)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 20 {
				in, w := aiGatewayInput(), want
				if (g+i)%2 == 1 {
					in, w = aiGatewayInput(), wantDenied
					in.Path = denied.Path
				}
				d, err := p.Decide(context.Background(), in)
				if err != nil || !reflect.DeepEqual(d, w) {
					errs <- fmt.Errorf("goroutine %d, decision %d: %+v %v", g, i, d, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestEvalCancelled: a context that ends during or before evaluation is a
// fault, not a decision.
func TestEvalCancelled(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := p.Decide(ctx, aiGatewayInput())
	if err == nil || d.Allow || d.Reason != ReasonDeadlineExceeded {
		t.Fatalf("%+v %v", d, err)
	}
}

// TestEvalOptionsCancel: with the evaluation options, ctx's cancellation
// still reaches OPA (its watcher runs asynchronously, so the test retries a
// bounded number of times for it to land).
func TestEvalOptionsCancel(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	in := aiGatewayInput()
	id := p.identify(in)
	v, err := in.valueOf(&id, &p.shape)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts := p.evalOptions(v)
	if _, err := p.query.Eval(ctx, opts...); err != nil {
		t.Fatalf("before cancel: %v", err)
	}
	cancel()
	for i := 0; ; i++ {
		_, err := p.query.Eval(ctx, opts...)
		if err != nil {
			if !strings.Contains(err.Error(), "cancel") {
				t.Fatalf("after cancel: %v", err)
			}
			break
		}
		if i == 200 {
			t.Fatal("evaluation still succeeds after the context was cancelled")
		}
		time.Sleep(time.Millisecond)
	}
}
