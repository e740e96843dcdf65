package regogen

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// Body rules compile to one rule per route, body_eval["<route>"], whose
// value is {"error": {...}} (a 400 with a reason and detail) or
// {"ups": [[unit primitive, detail template], ...]} in body order. The core
// reads it only for routes with body rules, after checking the body status.
// Every body read is a constant path below input.request.body; the decision
// cache keys on the values at exactly these selectors (policy.bodyKey).

const bodyRoot = "input.request.body"

// walk renders the Rego lines that reach the value at steps[:depth] of sel
// and returns them with the term naming that value. Array iteration ([*])
// binds a fresh variable per step, in array order.
func walk(sel manifest.Selector, depth int, prefix string) ([]string, string) {
	var lines []string
	cur := bodyRoot
	for i, st := range sel.Steps[:depth] {
		switch {
		case st.Field != "":
			cur += "[" + lit(st.Field) + "]"
		case st.Each:
			v := fmt.Sprintf("%s%d", prefix, i)
			lines = append(lines, "is_array("+cur+")", fmt.Sprintf("some %s in %s", v, cur))
			cur = v
		default:
			cur += fmt.Sprintf("[%d]", st.Index)
		}
	}
	return lines, cur
}

// stepPath renders the selector's first depth steps as a path for messages.
func stepPath(sel manifest.Selector, depth int) string {
	var b strings.Builder
	for _, st := range sel.Steps[:depth] {
		switch {
		case st.Field != "":
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(st.Field)
		case st.Each:
			b.WriteString("[*]")
		default:
			fmt.Fprintf(&b, "[%d]", st.Index)
		}
	}
	return b.String()
}

// shapeChecks returns, for every depth of the selector, a rule body that
// holds when the value there is present (not null) but of the wrong type
// for the next step, and the 400 detail naming it.
func shapeChecks(sel manifest.Selector) (bodies [][]string, details []string) {
	for d := 0; d <= len(sel.Steps); d++ {
		lines, cur := walk(sel, d, "s")
		want, check := "a string", "is_string"
		if d < len(sel.Steps) {
			if sel.Steps[d].Field != "" {
				want, check = "an object", "is_object"
			} else {
				want, check = "an array", "is_array"
			}
		}
		lines = append(lines, "x := "+cur, "x != null", "not "+check+"(x)")
		bodies = append(bodies, lines)
		where := "Request body"
		if d > 0 {
			where = "Request body: " + stepPath(sel, d)
		}
		details = append(details, where+" must be "+want)
	}
	return bodies, details
}

// valuesExpr is an array comprehension of the string values at the selector,
// in body order (absent fields and nulls yield nothing).
func valuesExpr(sel manifest.Selector) string {
	lines, cur := walk(sel, len(sel.Steps), "v")
	lines = append(lines, "v := "+cur, "is_string(v)")
	return "[v | " + strings.Join(lines, "; ") + "]"
}

// singleRef is the ref of a selector without [*].
func singleRef(sel manifest.Selector) string {
	_, cur := walk(sel, len(sel.Steps), "v")
	return cur
}

type ruleBody struct {
	head  string // value expression
	lines []string
}

// bodyRules renders the body_eval rule of a route.
func bodyRules(b *strings.Builder, r manifest.Route) {
	var chain []ruleBody
	errVal := func(reason, detail string) string {
		return fmt.Sprintf(`{"error": {"status": 400, "reason": %s, "detail": %s}}`, lit(reason), detail)
	}
	// 1. Shape errors, in rule order, shallowest first.
	seen := map[string]bool{}
	for _, sel := range routeSelectors(r) {
		if seen[sel.Path] {
			continue
		}
		seen[sel.Path] = true
		bodies, details := shapeChecks(sel)
		for i := range bodies {
			chain = append(chain, ruleBody{head: errVal("body_invalid", lit(details[i])), lines: bodies[i]})
		}
	}
	// 2. Rule-specific errors, then the unit primitives.
	var parts []string
	for i, br := range r.Body {
		key := fmt.Sprintf("%s#%d", r.ID, i)
		detail := br.Detail
		if detail == "" {
			detail = r.Detail
		}
		switch {
		case br.Each != nil && br.Template != "":
			pre, post, _ := strings.Cut(br.Template, "{value}")
			vals := valuesExpr(*br.Each)
			chain = append(chain, ruleBody{
				head:  errVal("body_invalid", fmt.Sprintf(`sprintf("Request body: %s %%q names no unit primitive", [v])`, br.Each.Path)),
				lines: []string{"some v in " + vals, fmt.Sprintf(`not known_unit_primitives[concat("", [%s, v, %s])]`, lit(pre), lit(post))},
			})
			parts = append(parts, fmt.Sprintf(`[[known_unit_primitives[concat("", [%s, v, %s])], %s] | some v in %s]`, lit(pre), lit(post), lit(detail), vals))
		case br.Each != nil:
			vals := valuesExpr(*br.Each)
			chain = append(chain, ruleBody{
				head:  errVal("body_invalid", fmt.Sprintf(`sprintf("Request body: %s %%q is not supported", [v])`, br.Each.Path)),
				lines: []string{"some v in " + vals, fmt.Sprintf("not %s[v]", lit(br.Map))},
			})
			parts = append(parts, fmt.Sprintf(`[[up, %s] | some v in %s; some up in %s[v]]`, lit(detail), vals, lit(br.Map)))
		default:
			chain = append(chain, ruleBody{
				head:  fmt.Sprintf(`{"error": body_case[%s].error}`, lit(key)),
				lines: []string{fmt.Sprintf("body_case[%s].error", lit(key))},
			})
			parts = append(parts, fmt.Sprintf("body_case[%s].ups", lit(key)))
			caseRules(b, key, br, detail)
		}
	}
	ups := "[]"
	if len(parts) > 0 {
		ups = parts[len(parts)-1]
		for i := len(parts) - 2; i >= 0; i-- {
			ups = fmt.Sprintf("array.concat(%s, %s)", parts[i], ups)
		}
	}
	chain = append(chain, ruleBody{head: `{"ups": ups}`, lines: []string{"ups := " + ups}})
	fmt.Fprintf(b, "body_eval[%s] := ", lit(r.ID))
	writeChain(b, chain)
}

func writeChain(b *strings.Builder, chain []ruleBody) {
	for i, c := range chain {
		if i > 0 {
			b.WriteString(" else := ")
		}
		b.WriteString(c.head + " if {\n")
		for _, l := range c.lines {
			b.WriteString("\t" + l + "\n")
		}
		b.WriteString("}")
	}
	b.WriteString("\n\n")
}

// caseRules renders a cases rule: the first case whose conditions hold
// gives {"ups": [...]} or {"error": ...}; none gives the otherwise outcome.
func caseRules(b *strings.Builder, key string, br manifest.BodyRule, detail string) {
	var chain []ruleBody
	for _, c := range br.Cases {
		var conds []string
		for _, w := range c.When {
			conds = append(conds, fmt.Sprintf("%s in %s", singleRef(w.Selector), litSetOf(w.Values)))
		}
		def := ruleBody{head: fmt.Sprintf(`{"ups": %s}`, upPairs(c.UnitPrimitives, detail)), lines: conds}
		if c.PromptFrom != nil {
			ref := singleRef(*c.PromptFrom)
			chain = append(chain,
				ruleBody{
					head:  fmt.Sprintf(`{"ups": [[up, %s] | some up in prompts[id]]}`, lit(detail)),
					lines: append(append([]string{}, conds...), "id := "+ref, "prompts[id]"),
				},
				ruleBody{
					head:  fmt.Sprintf(`{"error": {"status": 400, "reason": "body_invalid", "detail": sprintf("Request body: unknown prompt %%q in %s", [id])}}`, c.PromptFrom.Path),
					lines: append(append([]string{}, conds...), "id := "+ref, "is_string(id)"),
				})
		}
		if len(def.lines) == 0 {
			def.lines = []string{"true"}
		}
		chain = append(chain, def)
	}
	other := ruleBody{head: `{"ups": []}`, lines: []string{"true"}}
	if br.Otherwise == manifest.OtherwiseReject {
		other.head = fmt.Sprintf(`{"error": {"status": 400, "reason": "body_invalid", "detail": %s}}`, lit(noCaseDetail(br)))
	}
	chain = append(chain, other)
	fmt.Fprintf(b, "body_case[%s] := ", lit(key))
	writeChain(b, chain)
}

// noCaseDetail names the fields a cases rule looks at and the values it
// accepts, for the 400 when no case matches.
func noCaseDetail(br manifest.BodyRule) string {
	vals := map[string][]string{}
	var order []string
	for _, c := range br.Cases {
		for _, w := range c.When {
			if _, ok := vals[w.Selector.Path]; !ok {
				order = append(order, w.Selector.Path)
			}
			for _, v := range w.Values {
				if !contains(vals[w.Selector.Path], v) {
					vals[w.Selector.Path] = append(vals[w.Selector.Path], v)
				}
			}
		}
	}
	if len(order) == 0 {
		return "Request body is not supported"
	}
	p := order[0]
	v := vals[p]
	sort.Strings(v)
	return fmt.Sprintf("Request body: %s must be one of %s", p, strings.Join(v, ", "))
}

func upPairs(ups []string, detail string) string {
	pairs := make([][]string, len(ups))
	for i, up := range ups {
		pairs[i] = []string{up, detail}
	}
	if len(pairs) == 0 {
		return "[]"
	}
	return lit(pairs)
}

func litSetOf(vals []string) string {
	sorted := append([]string(nil), vals...)
	sort.Strings(sorted)
	return litSet(sorted)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// routeSelectors lists a route's selectors in rule order.
func routeSelectors(r manifest.Route) []manifest.Selector {
	var out []manifest.Selector
	for _, br := range r.Body {
		if br.Each != nil {
			out = append(out, *br.Each)
		}
		for _, c := range br.Cases {
			for _, w := range c.When {
				out = append(out, w.Selector)
			}
			if c.PromptFrom != nil {
				out = append(out, *c.PromptFrom)
			}
		}
	}
	return out
}
