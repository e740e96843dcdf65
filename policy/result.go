package policy

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// errNoDecision is returned when the policy produced no decision: a policy
// defect, which fails closed.
var errNoDecision = errors.New("policy: no decision (data.ccauthz.main.decision is undefined)")

// parseResult reads the decision object from the result term, without a
// JSON round trip.
func parseResult(rs rego.ResultSet) (Decision, error) {
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, errNoDecision
	}
	term, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return Decision{}, fmt.Errorf("policy: unexpected result type %T", rs[0].Expressions[0].Value)
	}
	obj, ok := term.Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("policy: decision is %s, not an object", ast.ValueName(term.Value))
	}
	var d Decision
	var errs []error
	get := func(key string) ast.Value {
		t := obj.Get(ast.InternedTerm(key))
		if t == nil {
			errs = append(errs, fmt.Errorf("decision has no %q", key))
			return ast.Null{}
		}
		return t.Value
	}
	d.Allow = boolOf(get("allow"), "allow", &errs)
	d.Status = intOf(get("status"), "status", &errs)
	d.Reason = Reason(stringOf(get("reason"), "reason", &errs))
	d.Route = stringOf(get("route"), "route", &errs)
	d.DryRun = boolOf(get("dry_run"), "dry_run", &errs)
	if body, ok := get("body").(ast.Object); ok {
		d.Body = make(map[string]any, body.Len())
		body.Foreach(func(k, v *ast.Term) {
			if ks, ok := k.Value.(ast.String); ok {
				d.Body[string(ks)] = valueToAny(v.Value)
			}
		})
	} else {
		errs = append(errs, errors.New("decision body is not an object"))
	}
	d.UnitPrimitives = stringsOf(get("unit_primitives"), "unit_primitives", &errs)
	d.HeadersToRemove = stringsOf(get("headers_to_remove"), "headers_to_remove", &errs)
	d.Headers = stringMapOf(get("headers"), "headers", &errs)
	d.ResponseHeaders = stringMapOf(get("response_headers"), "response_headers", &errs)
	if rl, ok := get("rate_limit").(ast.Object); ok {
		if e := rl.Get(ast.InternedTerm("entries")); e != nil {
			d.RateLimit.Entries = stringMapOf(e.Value, "rate_limit.entries", &errs)
		} else {
			errs = append(errs, errors.New("decision has no rate_limit.entries"))
		}
		if l := rl.Get(ast.InternedTerm("limit")); l != nil {
			if lo, ok := l.Value.(ast.Object); ok {
				var o LimitOverride
				if t := lo.Get(ast.InternedTerm("requests_per_unit")); t != nil {
					o.RequestsPerUnit = intOf(t.Value, "rate_limit.limit.requests_per_unit", &errs)
				}
				if t := lo.Get(ast.InternedTerm("unit")); t != nil {
					o.Unit = stringOf(t.Value, "rate_limit.limit.unit", &errs)
				}
				d.RateLimit.Limit = &o
			}
		}
	} else {
		errs = append(errs, errors.New("decision rate_limit is not an object"))
	}
	if len(errs) > 0 {
		return Decision{}, fmt.Errorf("policy: malformed decision: %w", errors.Join(errs...))
	}
	return d, nil
}

func boolOf(v ast.Value, key string, errs *[]error) bool {
	b, ok := v.(ast.Boolean)
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s is not a boolean", key))
	}
	return bool(b)
}

func stringOf(v ast.Value, key string, errs *[]error) string {
	s, ok := v.(ast.String)
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s is not a string", key))
	}
	return string(s)
}

func intOf(v ast.Value, key string, errs *[]error) int {
	n, ok := v.(ast.Number)
	if ok {
		if i, ok := n.Int(); ok {
			return i
		}
	}
	*errs = append(*errs, fmt.Errorf("%s is not an integer", key))
	return 0
}

func stringsOf(v ast.Value, key string, errs *[]error) []string {
	arr, ok := v.(*ast.Array)
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s is not an array", key))
		return nil
	}
	out := make([]string, 0, arr.Len())
	for i := 0; i < arr.Len(); i++ {
		if s, ok := arr.Elem(i).Value.(ast.String); ok {
			out = append(out, string(s))
		} else {
			out = append(out, stringOf(arr.Elem(i).Value, key+" item", errs))
		}
	}
	return out
}

func stringMapOf(v ast.Value, key string, errs *[]error) map[string]string {
	obj, ok := v.(ast.Object)
	if !ok {
		*errs = append(*errs, fmt.Errorf("%s is not an object", key))
		return nil
	}
	out := make(map[string]string, obj.Len())
	obj.Foreach(func(k, v *ast.Term) {
		ks, kok := k.Value.(ast.String)
		vs, vok := v.Value.(ast.String)
		if kok && vok {
			out[string(ks)] = string(vs)
			return
		}
		// The labels are built only for a malformed decision.
		out[stringOf(k.Value, key+" key", errs)] = stringOf(v.Value, key+"."+k.String(), errs)
	})
	return out
}

// valueToAny converts a Rego value to the Go values encoding/json produces.
func valueToAny(v ast.Value) any {
	switch t := v.(type) {
	case ast.Null:
		return nil
	case ast.Boolean:
		return bool(t)
	case ast.String:
		return string(t)
	case ast.Number:
		if f, ok := t.Float64(); ok {
			return f
		}
		return json.Number(t)
	case *ast.Array:
		out := make([]any, 0, t.Len())
		for i := 0; i < t.Len(); i++ {
			out = append(out, valueToAny(t.Elem(i).Value))
		}
		return out
	case ast.Object:
		out := make(map[string]any, t.Len())
		t.Foreach(func(k, x *ast.Term) {
			if ks, ok := k.Value.(ast.String); ok {
				out[string(ks)] = valueToAny(x.Value)
			} else {
				out[k.String()] = valueToAny(x.Value)
			}
		})
		return out
	case ast.Set:
		out := make([]any, 0, t.Len())
		t.Foreach(func(x *ast.Term) { out = append(out, valueToAny(x.Value)) })
		return out
	}
	return v.String()
}
