package policy

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// TestInputShapeKeepsOnlyWhatIsRead checks the input given to Rego carries
// only the headers and claims the compiled policy can read, and that any
// read the analysis cannot pin down gives every one of them.
func TestInputShapeKeepsOnlyWhatIsRead(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{})
	// The core reads these claims; the generated bindings the instance id.
	for _, c := range []string{"scopes", "sub", "iss", "gitlab_realm", "gitlab_instance_id"} {
		if !slices.Contains(p.shape.claims, c) {
			t.Errorf("claims %v: %q missing", p.shape.claims, c)
		}
	}
	for _, c := range []string{"jti", "exp", "aud"} {
		if slices.Contains(p.shape.claims, c) {
			t.Errorf("claims %v: %q is read by no rule", p.shape.claims, c)
		}
	}
	if p.shape.headers == nil || slices.Contains(p.shape.headers, "user-agent") ||
		!slices.Contains(p.shape.headers, "x-gitlab-authentication-type") {
		t.Errorf("headers %v", p.shape.headers)
	}

	for name, src := range map[string]string{
		"variable claim": `deny contains "x" if { some k; input.token.claims[k] == "evil" }`,
		"whole claims":   `deny contains "x" if { object.get(input.token.claims, "jti", "") == "evil" }`,
		"whole token":    `deny contains "x" if { t := input.token; t.claims.jti == "evil" }`,
		"claims rule":    `deny contains "x" if { c := data.ccauthz.main.claims; c.jti == "evil" }`,
		"whole input":    `deny contains "x" if { walk(input, [_, "evil"]) }`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeExtra(t, map[string]string{"x.rego": "package ccauthz.extra\n\n" + src + "\n"})
			p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
			if p.shape.claims != nil {
				t.Fatalf("claims %v, want all", p.shape.claims)
			}
			// And the read is honoured: a claim no core rule reads denies.
			in := aiGatewayInput()
			in.Token.Claims["jti"] = "evil"
			d, err := p.Decide(context.Background(), in)
			if err != nil || d.Reason != ReasonExtraPolicyDeny {
				t.Fatalf("%+v %v", d, err)
			}
		})
	}

	t.Run("constant claim", func(t *testing.T) {
		dir := writeExtra(t, map[string]string{"x.rego": "package ccauthz.extra\n\n" +
			`deny contains "no ci" if { input.token.claims.gitlab_ci == true }` + "\n"})
		p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
		if !slices.Contains(p.shape.claims, "gitlab_ci") || slices.Contains(p.shape.claims, "jti") {
			t.Fatalf("claims %v", p.shape.claims)
		}
		in := aiGatewayInput()
		in.Token.Claims["gitlab_ci"] = true
		if d, _ := p.Decide(context.Background(), in); d.Reason != ReasonExtraPolicyDeny {
			t.Fatalf("%+v", d)
		}
	})

	t.Run("variable header", func(t *testing.T) {
		dir := writeExtra(t, map[string]string{"x.rego": "package ccauthz.extra\n\n" +
			`deny contains "x" if { some h; input.request.headers[h] == "evil" }` + "\n"})
		p := buildExample(t, "ai_gateway", BuildOptions{ExtraDir: dir})
		if p.shape.headers != nil {
			t.Fatalf("headers %v, want all", p.shape.headers)
		}
		in := aiGatewayInput()
		in.Headers["user-agent"] = "evil"
		if d, _ := p.Decide(context.Background(), in); d.Reason != ReasonExtraPolicyDeny {
			t.Fatalf("%+v", d)
		}
	})
}

// TestTrimmedInputDecidesAlike evaluates every generated case with the
// trimmed input and with the whole input: the decisions are equal.
func TestTrimmedInputDecidesAlike(t *testing.T) {
	p := buildExample(t, "ai_gateway", BuildOptions{CacheSize: -1})
	ctx := context.Background()
	for _, c := range p.Generated().Cases {
		in := caseInput(t, c)
		in.Headers["user-agent"] = "gitlab-rails"
		if in.Token.Claims != nil {
			in.Token.Claims["jti"] = strings.Repeat("j", 8)
		}
		id := p.identify(in)
		whole, err := in.value(&id)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := p.query.Eval(ctx, rego.EvalParsedInput(whole))
		if err != nil {
			t.Fatal(err)
		}
		want, err := p.fast.readVerdict(rs, in, &id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.eval(ctx, in, &id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s/%s: trimmed input decides\n %+v\nwhole input\n %+v", c.Route, c.Name, got, want)
		}
	}
}
