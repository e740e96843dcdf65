package regogen

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// scenario is a request a route allows and what it needs: the path, the
// unit-primitive header, the body, and the unit primitives in the core's
// order (all-of, any-of, then derived from the prompt or the body).
type scenario struct {
	path     string
	upHeader string
	body     any // nil: no body
	promptID string
	allOf    []string
	anyOf    []string
	derived  []derivedUP
}

// derivedUP is a unit primitive a prompt or a body rule adds, with the
// detail template of its 403.
type derivedUP struct{ up, detail string }

func baseScenario(cat *catalog.Catalog, m *manifest.Manifest, r manifest.Route) scenario {
	sc := scenario{path: examplePath(r), allOf: r.UnitPrimitives, anyOf: r.AnyOf}
	if r.HeaderUP != nil {
		sc.upHeader = r.HeaderUP.Allow[0]
		sc.allOf = []string{sc.upHeader}
	}
	if r.Prompt && len(m.Prompts) > 0 {
		sc = sc.withPrompt(r, m.Prompts[0])
	}
	if r.HasBody() {
		sc.body = baseBody(cat, m, r)
		sc.derived, _ = bodyOracle(m, r, sc.body)
	}
	return sc
}

func (sc scenario) withPrompt(r manifest.Route, p manifest.Prompt) scenario {
	sc.promptID = p.ID
	sc.path = promptPath(r, p.ID)
	sc.derived = nil
	for _, up := range p.UnitPrimitives {
		sc.derived = append(sc.derived, derivedUP{up, r.Detail})
	}
	return sc
}

// promptPath is the route's path with the prompt id in place of "*".
func promptPath(r manifest.Route, id string) string {
	return strings.TrimSuffix(examplePath(r), testWildcardRest) + id
}

// allScopes are the scopes that satisfy the scenario (the first any-of).
func (sc scenario) allScopes() []string {
	out := slices.Clone(sc.allOf)
	if len(sc.anyOf) > 0 {
		out = append(out, sc.anyOf[0])
	}
	for _, d := range sc.derived {
		if !slices.Contains(out, d.up) {
			out = append(out, d.up)
		}
	}
	return out
}

// checked is what the decision reports as checked for a token with scopes.
func (sc scenario) checked(scopes []string) []string {
	out := []string{}
	push := func(up string) {
		if !slices.Contains(out, up) {
			out = append(out, up)
		}
	}
	for _, up := range sc.allOf {
		push(up)
	}
	for _, up := range sc.anyOf {
		if slices.Contains(scopes, up) {
			push(up)
		}
	}
	for _, d := range sc.derived {
		push(d.up)
	}
	return out
}

// outcome mirrors the core's scope checks: the first missing all-of unit
// primitive, then any-of, then the first missing derived one.
func (sc scenario) outcome(r manifest.Route, scopes []string) (bool, string) {
	for _, up := range sc.allOf {
		if !slices.Contains(scopes, up) {
			return false, sc.render(r, r.Detail, up)
		}
	}
	if len(sc.anyOf) > 0 && !slices.ContainsFunc(sc.anyOf, func(up string) bool { return slices.Contains(scopes, up) }) {
		return false, sc.render(r, r.Detail, strings.Join(sc.anyOf, " or "))
	}
	for _, d := range sc.derived {
		if !slices.Contains(scopes, d.up) {
			return false, sc.render(r, d.detail, d.up)
		}
	}
	return true, ""
}

// firstUP is the unit primitive a detail names when none is missing.
func (sc scenario) firstUP() string {
	switch {
	case len(sc.allOf) > 0:
		return sc.allOf[0]
	case len(sc.anyOf) > 0:
		return strings.Join(sc.anyOf, " or ")
	case len(sc.derived) > 0:
		return sc.derived[0].up
	}
	return sc.upHeader
}

func (sc scenario) render(r manifest.Route, detail, up string) string {
	d := strings.ReplaceAll(detail, "{unit_primitive}", up)
	for _, p := range r.Params() {
		d = strings.ReplaceAll(d, "{"+p+"}", testParamValue)
	}
	wild := ""
	if r.Prompt {
		wild = sc.promptID
	}
	return strings.ReplaceAll(d, "{prompt_id}", wild)
}

// input is the scenario as a policy input with the given scopes.
func (sc scenario) input(m *manifest.Manifest, r manifest.Route, scopes []string) map[string]any {
	in := validInput(m, r, scopes, sc.upHeader)
	req := in["request"].(map[string]any)
	req["path"] = sc.path
	if sc.body != nil {
		req["body"] = deepCopy(sc.body)
		req["body_status"] = "ok"
	}
	return in
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

func ident(s string) string {
	return strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(s), "_"), "_")
}

// promptCases: every prompt of the registry allowed with its unit
// primitives and denied without its last one; an unknown id is a 404.
func promptCases(m *manifest.Manifest, r manifest.Route, base scenario, baseIn map[string]any) []Case {
	var out []Case
	for _, p := range m.Prompts {
		sc := base.withPrompt(r, p)
		all := sc.allScopes()
		name := ident(p.ID)
		out = append(out, Case{Route: r.ID, Name: "allowed_prompt_" + name, Input: sc.input(m, r, all),
			Expect: Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, Route: r.ID, UnitPrimitives: sc.checked(all)}})
		_, detail := sc.outcome(r, all[:len(all)-1])
		out = append(out, Case{Route: r.ID, Name: "denied_prompt_" + name + "_without_" + all[len(all)-1], Input: sc.input(m, r, all[:len(all)-1]),
			Expect: deny(r.ID, 403, "insufficient_scope", map[string]any{"detail": detail}, r.DryRun)})
	}
	unknown := with(baseIn, func(req, _, _, _ map[string]any) { req["path"] = promptPath(r, "ccauthz/no_such_prompt") })
	out = append(out, Case{Route: r.ID, Name: "denied_unknown_prompt", Input: unknown,
		Expect: deny(r.ID, 404, "no_route", map[string]any{"detail": "Not found"}, r.DryRun)})
	return out
}

// bodyCases: the body statuses, a wrong shape, and for every rule the
// values it maps, what it refuses, and (cases) each case.
func bodyCases(cat *catalog.Catalog, m *manifest.Manifest, r manifest.Route, base scenario, baseIn map[string]any) []Case {
	var out []Case
	dry := r.DryRun
	add := func(name string, in map[string]any, e Expect) {
		out = append(out, Case{Route: r.ID, Name: name, Input: in, Expect: e})
	}
	status := func(st string) map[string]any {
		return with(baseIn, func(req, _, _, _ map[string]any) {
			delete(req, "body")
			req["body_status"] = st
		})
	}
	add("denied_body_absent", status("absent"), deny(r.ID, 400, "body_missing", map[string]any{"detail": "Request body required"}, dry))
	add("denied_body_too_large", status("too_large"), deny(r.ID, 413, "body_too_large", map[string]any{"detail": "Request body too large"}, dry))
	add("denied_body_truncated", status("truncated"), deny(r.ID, 400, "body_invalid", map[string]any{"detail": "Request body truncated"}, dry))
	add("denied_body_not_json", status("invalid"), deny(r.ID, 400, "body_invalid", map[string]any{"detail": "Request body is not valid JSON"}, dry))
	add("denied_body_not_an_object",
		with(baseIn, func(req, _, _, _ map[string]any) { req["body"] = []any{"not", "an", "object"} }),
		deny(r.ID, 400, "body_invalid", map[string]any{"detail": "Request body must be an object"}, dry))

	// A number where a selector expects a string: the first selector whose
	// leaf is present in the base body.
	for _, sel := range routeSelectors(r) {
		if _, ok := getSingle(base.body, sel); !ok && !sel.Many() {
			continue
		}
		body := setLeaves(deepCopy(base.body), sel.Steps, 42.0)
		add("denied_body_wrong_type",
			with(baseIn, func(req, _, _, _ map[string]any) { req["body"] = body }),
			deny(r.ID, 400, "body_invalid", map[string]any{"detail": "Request body: " + sel.Path + " must be a string"}, dry))
		break
	}

	withBody := func(body any) (scenario, map[string]any) {
		sc := base
		sc.body = body
		sc.derived, _ = bodyOracle(m, r, body)
		return sc, sc.input(m, r, sc.allScopes())
	}
	for i, br := range r.Body {
		switch {
		case br.Each != nil:
			// A value no unit primitive answers to.
			body := mergeBody(deepCopy(base.body), build(br.Each.Steps, []string{"zzz_unknown"}))
			_, in := withBody(body)
			msg := "names no unit primitive"
			if br.Template == "" {
				msg = "is not supported"
			}
			add(fmt.Sprintf("denied_rule_%d_unknown_value", i), in,
				deny(r.ID, 400, "body_invalid", map[string]any{"detail": fmt.Sprintf("Request body: %s %q %s", br.Each.Path, "zzz_unknown", msg)}, dry))
			// No values: the rule adds nothing.
			sc, in := withBody(removePath(deepCopy(base.body), br.Each.Steps))
			add(fmt.Sprintf("allowed_rule_%d_without_values", i), in,
				Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID, UnitPrimitives: sc.checked(sc.allScopes())})
		default:
			for j, c := range br.Cases {
				body := deepCopy(base.body)
				for _, w := range c.When {
					body = mergeBody(body, build(w.Selector.Steps, w.Values[:1]))
				}
				variants := []struct {
					name string
					body any
				}{{fmt.Sprintf("rule_%d_case_%d", i, j), body}}
				if c.PromptFrom != nil {
					if len(m.Prompts) > 0 {
						p := m.Prompts[len(m.Prompts)-1]
						variants = append(variants, struct {
							name string
							body any
						}{fmt.Sprintf("rule_%d_case_%d_prompt", i, j), mergeBody(deepCopy(body), build(c.PromptFrom.Steps, []string{p.ID}))})
					}
					unknown := mergeBody(deepCopy(body), build(c.PromptFrom.Steps, []string{"ccauthz/no_such_prompt"}))
					_, in := withBody(unknown)
					if _, err := bodyOracle(m, r, unknown); err != "" {
						add(fmt.Sprintf("denied_rule_%d_case_%d_unknown_prompt", i, j), in,
							deny(r.ID, 400, "body_invalid", map[string]any{"detail": err}, dry))
					}
				}
				for _, v := range variants {
					sc, in := withBody(v.body)
					if _, err := bodyOracle(m, r, v.body); err != "" {
						continue
					}
					all := sc.allScopes()
					add("allowed_"+v.name, in, Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID, UnitPrimitives: sc.checked(all)})
					if len(all) > 0 {
						_, detail := sc.outcome(r, all[:len(all)-1])
						add("denied_"+v.name+"_without_"+all[len(all)-1],
							with(in, func(_, _, _, cl map[string]any) { cl["scopes"] = toAny(all[:len(all)-1]) }),
							deny(r.ID, 403, "insufficient_scope", map[string]any{"detail": detail}, dry))
					}
				}
			}
			// No case matches.
			if len(br.Cases[0].When) > 0 {
				body := mergeBody(deepCopy(base.body), build(br.Cases[0].When[0].Selector.Steps, []string{"zzz_unknown"}))
				_, err := bodyOracle(m, r, body)
				sc, in := withBody(body)
				if err != "" {
					add(fmt.Sprintf("denied_rule_%d_no_case", i), in, deny(r.ID, 400, "body_invalid", map[string]any{"detail": err}, dry))
				} else {
					add(fmt.Sprintf("allowed_rule_%d_no_case", i), in,
						Expect{Allow: true, Status: 200, Reason: "allowed", Body: map[string]any{}, DryRun: dry, Route: r.ID, UnitPrimitives: sc.checked(sc.allScopes())})
				}
			}
		}
	}
	return out
}

// baseBody builds a body every rule of the route accepts: two values for an
// each rule, the conditions of the first case of a cases rule.
func baseBody(cat *catalog.Catalog, m *manifest.Manifest, r manifest.Route) any {
	var body any = map[string]any{}
	for _, br := range r.Body {
		switch {
		case br.Each != nil:
			body = mergeBody(body, build(br.Each.Steps, eachValues(cat, m, br)))
		case len(br.Cases) > 0:
			for _, w := range br.Cases[len(br.Cases)-1].When {
				body = mergeBody(body, build(w.Selector.Steps, w.Values[:1]))
			}
		}
	}
	return body
}

// eachValues picks up to two values an each rule maps to unit primitives of
// the backend.
func eachValues(cat *catalog.Catalog, m *manifest.Manifest, br manifest.BodyRule) []string {
	var vals []string
	if br.Template != "" {
		pre, post, _ := strings.Cut(br.Template, "{value}")
		for _, u := range cat.UnitPrimitivesOfBackend(m.Backend) {
			if strings.HasPrefix(u.Name, pre) && strings.HasSuffix(u.Name, post) && len(u.Name) > len(pre)+len(post) {
				vals = append(vals, strings.TrimSuffix(strings.TrimPrefix(u.Name, pre), post))
			}
		}
	} else {
		for k := range br.Map {
			vals = append(vals, k)
		}
	}
	sort.Strings(vals)
	if len(vals) > 2 {
		vals = vals[:2]
	}
	return vals
}

// bodyOracle computes the unit primitives a body adds (or the 400 detail),
// the way the generated rules do for well-shaped bodies.
func bodyOracle(m *manifest.Manifest, r manifest.Route, body any) ([]derivedUP, string) {
	var out []derivedUP
	for _, br := range r.Body {
		detail := br.Detail
		if detail == "" {
			detail = r.Detail
		}
		switch {
		case br.Each != nil:
			for _, v := range getAll(body, br.Each.Steps) {
				if br.Template != "" {
					out = append(out, derivedUP{strings.Replace(br.Template, "{value}", v, 1), detail})
					continue
				}
				ups, ok := br.Map[v]
				if !ok {
					return nil, fmt.Sprintf("Request body: %s %q is not supported", br.Each.Path, v)
				}
				for _, up := range ups {
					out = append(out, derivedUP{up, detail})
				}
			}
		default:
			matched := false
			for _, c := range br.Cases {
				ok := true
				for _, w := range c.When {
					v, present := getSingle(body, w.Selector)
					ok = ok && present && slices.Contains(w.Values, v)
				}
				if !ok {
					continue
				}
				matched = true
				ups := c.UnitPrimitives
				if c.PromptFrom != nil {
					if id, present := getSingle(body, *c.PromptFrom); present {
						p, known := m.PromptByID(id)
						if !known {
							return nil, fmt.Sprintf("Request body: unknown prompt %q in %s", id, c.PromptFrom.Path)
						}
						ups = p.UnitPrimitives
					}
				}
				for _, up := range ups {
					out = append(out, derivedUP{up, detail})
				}
				break
			}
			if !matched && br.Otherwise == manifest.OtherwiseReject {
				return nil, noCaseDetail(br)
			}
		}
	}
	return out, ""
}

// build makes a body holding vals at steps: one element per value at the
// last [*], one element at every other.
func build(steps []manifest.Step, vals []string) any {
	if len(steps) == 0 {
		if len(vals) == 0 {
			return nil
		}
		return vals[0]
	}
	st, rest := steps[0], steps[1:]
	switch {
	case st.Field != "":
		return map[string]any{st.Field: build(rest, vals)}
	case st.Each:
		for _, s := range rest {
			if s.Each {
				return []any{build(rest, vals)}
			}
		}
		out := []any{}
		for _, v := range vals {
			out = append(out, build(rest, []string{v}))
		}
		return out
	}
	out := make([]any, st.Index+1)
	for i := range out {
		out[i] = filler(rest)
	}
	out[st.Index] = build(rest, vals)
	return out
}

// filler is a value of the shape the next step expects.
func filler(rest []manifest.Step) any {
	if len(rest) > 0 && rest[0].Field != "" {
		return map[string]any{}
	}
	return []any{}
}

// mergeBody merges src into dst: objects key by key, arrays element by
// element (src wins for scalars).
func mergeBody(dst, src any) any {
	switch s := src.(type) {
	case map[string]any:
		d, ok := dst.(map[string]any)
		if !ok {
			return s
		}
		for k, v := range s {
			d[k] = mergeBody(d[k], v)
		}
		return d
	case []any:
		d, ok := dst.([]any)
		if !ok {
			return s
		}
		for i, v := range s {
			if i < len(d) {
				d[i] = mergeBody(d[i], v)
			} else {
				d = append(d, v)
			}
		}
		return d
	}
	return src
}

// removePath deletes the first field of steps from the body.
func removePath(body any, steps []manifest.Step) any {
	if obj, ok := body.(map[string]any); ok && len(steps) > 0 && steps[0].Field != "" {
		delete(obj, steps[0].Field)
	}
	return body
}

// setLeaves replaces every value at steps with v.
func setLeaves(body any, steps []manifest.Step, v any) any {
	if len(steps) == 0 {
		return v
	}
	st := steps[0]
	switch t := body.(type) {
	case map[string]any:
		if st.Field != "" {
			t[st.Field] = setLeaves(t[st.Field], steps[1:], v)
		}
	case []any:
		for i := range t {
			if st.Each || st.Index == i {
				t[i] = setLeaves(t[i], steps[1:], v)
			}
		}
	}
	return body
}

func getSingle(body any, sel manifest.Selector) (string, bool) {
	vals := getAll(body, sel.Steps)
	if len(vals) != 1 {
		return "", false
	}
	return vals[0], true
}

func getAll(v any, steps []manifest.Step) []string {
	if len(steps) == 0 {
		if s, ok := v.(string); ok {
			return []string{s}
		}
		return nil
	}
	st := steps[0]
	switch t := v.(type) {
	case map[string]any:
		if st.Field != "" {
			return getAll(t[st.Field], steps[1:])
		}
	case []any:
		if st.Each {
			var out []string
			for _, e := range t {
				out = append(out, getAll(e, steps[1:])...)
			}
			return out
		}
		if st.Field == "" && st.Index < len(t) {
			return getAll(t[st.Index], steps[1:])
		}
	}
	return nil
}
