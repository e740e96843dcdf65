package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ccauthz/ccauthz/policy/identity"
)

// verdictQuery is what Decide evaluates: data.ccauthz.main.verdict is the
// compact fast_verdict when fast_allow holds, else full_decision (see
// core.rego). It answers exactly as DecisionQuery does, with the constant
// part of a fast allow left to fastDecision.
const verdictQuery = "data.ccauthz.main.verdict"

// evalOptions are the options of one evaluation on input v: the policy's
// shared read transaction and no metrics. Cancellation stays OPA's (a
// goroutine per evaluation watching ctx): context.AfterFunc would save it
// only for contexts of the context package, and the server's check
// deadline is not one, so it would start a goroutine all the same.
func (p *Policy) evalOptions(v ast.Value) []rego.EvalOption {
	return []rego.EvalOption{
		rego.EvalParsedInput(v),
		rego.EvalTransaction(p.txn),
		rego.EvalMetrics(metrics.NoOp()),
	}
}

// errNoFastClass says a fast_verdict named a rate class rate_limit_of does
// not list (the generator lists every class, so never in practice): then
// fast_allow is undefined and Decide evaluates DecisionQuery instead.
var errNoFastClass = errors.New("policy: fast verdict's rate class has no rate_limit_of entry")

// fastConsts are the constants of the generated data that fast_allow puts
// into its decision, read once per build so a fast allow's decision is
// assembled in Go from the per-request fast_verdict.
type fastConsts struct {
	backend string // data.ccauthz.generated.backend
	// limits is data.ccauthz.generated.rate_limit_of: rate class → its
	// limit override, nil for a class without one. Shared by every
	// decision of the class (RateLimit.Limit is immutable).
	limits map[string]*LimitOverride
}

// readFastConsts evaluates the generated constants fastDecision needs. Only
// the generator's package defines them (an extra module is confined to
// ccauthz.extra), so they are the same for every request.
func readFastConsts(compiler *ast.Compiler) (fastConsts, error) {
	rs, err := rego.New(
		rego.Query("data.ccauthz.generated.backend; data.ccauthz.generated.rate_limit_of"),
		rego.Compiler(compiler),
		rego.GenerateJSON(keepTerm),
	).Eval(context.Background())
	if err != nil {
		return fastConsts{}, fmt.Errorf("policy: generated constants: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 2 {
		return fastConsts{}, errors.New("policy: generated constants: backend or rate_limit_of undefined")
	}
	var errs []error
	c := fastConsts{limits: map[string]*LimitOverride{}}
	backend, _ := rs[0].Expressions[0].Value.(*ast.Term)
	limits, _ := rs[0].Expressions[1].Value.(*ast.Term)
	if backend == nil || limits == nil {
		return fastConsts{}, errors.New("policy: generated constants: not terms")
	}
	c.backend = stringOf(backend.Value, "generated backend", &errs)
	obj, ok := limits.Value.(ast.Object)
	if !ok {
		return fastConsts{}, errors.New("policy: generated constants: rate_limit_of is not an object")
	}
	obj.Foreach(func(k, v *ast.Term) {
		class := stringOf(k.Value, "rate_limit_of key", &errs)
		c.limits[class] = nil
		o, ok := v.Value.(ast.Object)
		if !ok {
			errs = append(errs, fmt.Errorf("rate_limit_of[%s] is not an object", k))
			return
		}
		if l := o.Get(ast.InternedTerm("limit")); l != nil {
			c.limits[class] = limitOf(l.Value, &errs)
		}
	})
	if len(errs) > 0 {
		return fastConsts{}, fmt.Errorf("policy: generated constants: %w", errors.Join(errs...))
	}
	return c, nil
}

// limitOf reads a {requests_per_unit, unit} limit override.
func limitOf(v ast.Value, errs *[]error) *LimitOverride {
	lo, ok := v.(ast.Object)
	if !ok {
		*errs = append(*errs, errors.New("rate_limit.limit is not an object"))
		return nil
	}
	var o LimitOverride
	if t := lo.Get(ast.InternedTerm("requests_per_unit")); t != nil {
		o.RequestsPerUnit = intOf(t.Value, "rate_limit.limit.requests_per_unit", errs)
	}
	if t := lo.Get(ast.InternedTerm("unit")); t != nil {
		o.Unit = stringOf(t.Value, "rate_limit.limit.unit", errs)
	}
	return &o
}

// readVerdict reads the result of verdictQuery: fast_verdict (an array),
// expanded by fastDecision, or the decision object (parseResult).
func (c *fastConsts) readVerdict(rs rego.ResultSet, in *Input, id *identity.Identity) (Decision, error) {
	if len(rs) == 1 && len(rs[0].Expressions) == 1 {
		if t, ok := rs[0].Expressions[0].Value.(*ast.Term); ok {
			if arr, ok := t.Value.(*ast.Array); ok {
				return c.fastDecision(arr, in, id)
			}
		}
	}
	return parseResult(rs)
}

// fastDecision expands fast_verdict, [route id, unit primitives, rate-limit
// unit primitive, rate class, dry run], to the decision fast_allow in
// core.rego builds from it: the same keys and values, the identity's from
// the input's identity object (id) and the issuer from the token. The
// policy test compares it with full_decision on every generated case.
func (c *fastConsts) fastDecision(arr *ast.Array, in *Input, id *identity.Identity) (Decision, error) {
	if arr.Len() != 5 {
		return Decision{}, fmt.Errorf("policy: malformed verdict: %d items, want 5", arr.Len())
	}
	var errs []error
	route := stringOf(arr.Elem(0).Value, "verdict route", &errs)
	ups := stringsOf(arr.Elem(1).Value, "verdict unit_primitives", &errs)
	rateUP := stringOf(arr.Elem(2).Value, "verdict rate-limit unit primitive", &errs)
	class := stringOf(arr.Elem(3).Value, "verdict rate class", &errs)
	dry := boolOf(arr.Elem(4).Value, "verdict dry_run", &errs)
	if len(errs) > 0 {
		return Decision{}, fmt.Errorf("policy: malformed verdict: %w", errors.Join(errs...))
	}
	limit, ok := c.limits[class]
	if !ok {
		// fast_allow is undefined then (it looks the class up in
		// rate_limit_of), so decision is full_decision: the caller asks it.
		return Decision{}, errNoFastClass
	}
	return Decision{
		Allow:          true,
		Status:         200,
		Body:           map[string]any{},
		Reason:         ReasonAllowed,
		Route:          route,
		UnitPrimitives: ups,
		Headers: map[string]string{
			"x-ccauthz-decision":       "allow",
			"x-ccauthz-route":          route,
			"x-ccauthz-unit-primitive": rateUP,
			"x-ccauthz-issuer":         in.Token.Issuer,
			headerSubject:              id.Subject,
			headerRealm:                id.ClaimRealm,
		},
		HeadersToRemove: []string{},
		ResponseHeaders: map[string]string{},
		RateLimit: RateLimit{
			Entries: map[string]string{
				"backend":             c.backend,
				"unit_primitive":      rateUP,
				ratelimitInstanceID:   id.InstanceID.Value,
				ratelimitGlobalUserID: id.GlobalUserID.Value,
				ratelimitRealm:        id.Realm.Value,
				ratelimitSeatBucket:   id.SeatBucket.Value,
				"rate_class":          class,
			},
			Limit: limit,
		},
		DryRun: dry,
	}, nil
}
