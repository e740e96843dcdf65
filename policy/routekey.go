package policy

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
	"github.com/ccauthz/ccauthz/policy/route"
)

// upHeader is the request header that names a unit primitive (proxy routes).
const upHeader = "x-gitlab-unit-primitive"

// routeKeys is the request part of the decision-cache key. Instead of the raw
// method and path it keys on the route the request matches (package route,
// which answers what the generated Rego routing answers) and on only what
// that route's decision can read: decided per route when the policy is
// built (planRoute). When the policy reads the method, the path or the
// unit-primitive header anywhere the plan does not account for (an extra
// module, a changed core), the key falls back to the raw values: rawPath and
// rawHeader say why.
type routeKeys struct {
	matcher *route.Matcher
	plans   []routePlan // by manifest route index
	// known maps every unit primitive name and alias of the catalog to its
	// canonical name (the policy's known_unit_primitives).
	known map[string]string
	// prompts are the prompt registry's ids.
	prompts map[string]bool
	// rawPath and rawHeader are why the method and path, or the
	// unit-primitive header, are keyed raw ("" when they are not).
	rawPath, rawHeader string
}

// routePlan is what one route's decision can read of the request besides
// the headers keyed for every route.
//
// A token that is not valid is answered 401 or 503 before the decision
// reads a 403 detail, a param, the raw header or the prompt's registration
// (core.rego outcome); it still reads the route (id, dry run, rate class),
// the unit primitives the route would check (a prompt's, a body rule's, the
// unit-primitive header's on a proxy route) and so the body on body routes.
type routePlan struct {
	id string
	// params are the segment indices of the {param}s a 403 detail names
	// (valid tokens only).
	params []int
	// rest: the wildcard's rest is named by a 403 detail ({prompt_id} on a
	// route that is not a prompt route; valid tokens only).
	rest bool
	// prompt: the rest is a prompt id; keyed as the id when the registry
	// has it, else as "unknown" (an unknown prompt is a 404 that names
	// nothing), for every token status.
	prompt bool
	// headerMode: a proxy route; the raw header for a valid token (the 400s
	// quote it), its canonical unit primitive otherwise.
	headerMode bool
	// headerFallback: the 403 detail and scope hint of a route with neither
	// unit primitives nor any-of can fall back to the raw header (valid
	// tokens only).
	headerFallback bool
	body           bool
}

// newRouteKeys plans the request key of every route of a bound manifest.
func newRouteKeys(cat *catalog.Catalog, m *manifest.Manifest, c *ast.Compiler, extra []string) *routeKeys {
	rk := &routeKeys{matcher: route.New(m), known: map[string]string{}, prompts: map[string]bool{}}
	for _, name := range cat.UnitPrimitiveNames() {
		rk.known[name] = name
		for _, a := range cat.UnitPrimitives[name].AliasNames {
			rk.known[a] = name
		}
	}
	for _, p := range m.Prompts {
		rk.prompts[p.ID] = true
	}
	for _, r := range m.Routes {
		rk.plans = append(rk.plans, planRoute(r))
	}
	rk.rawPath, rk.rawHeader = requestReads(c, extra)
	return rk
}

func planRoute(r manifest.Route) routePlan {
	pl := routePlan{
		id: r.ID, prompt: r.Prompt, headerMode: r.HeaderUP != nil, body: r.HasBody(),
		headerFallback: r.HeaderUP == nil && len(r.UnitPrimitives) == 0 && len(r.AnyOf) == 0,
	}
	// Every detail template a 403 of this route can use (strings.replace_n
	// replaces in one pass, so a value is only in the detail when its
	// placeholder is in the template).
	templates := []string{r.Detail}
	for _, br := range r.Body {
		templates = append(templates, br.Detail)
	}
	names := func(placeholder string) bool {
		for _, t := range templates {
			if strings.Contains(t, placeholder) {
				return true
			}
		}
		return false
	}
	for i, s := range r.Segments {
		switch s.Kind {
		case manifest.SegParam:
			if names("{" + s.Value + "}") {
				pl.params = append(pl.params, i)
			}
		case manifest.SegWildcard:
			pl.rest = !r.Prompt && names("{prompt_id}")
		}
	}
	return pl
}

// The rules that may read the method, the path and the unit-primitive
// header; the plans above account for what the core makes of them. The
// generated fast_ups reads the header only for header-mode (proxy) routes,
// and only fast_allow uses it, which holds only for a valid token: the
// plan keys those routes on the raw header for valid tokens.
var (
	// fast_exact matches exactly as exact_route does (same method and path
	// equalities) and its value is a constant of the route it matches.
	pathRules   = map[string]map[string]bool{corerego.CoreFile: {"path_parts": true}, regogen.ModuleFile: {"exact_route": true, "fast_exact": true, "path_parts": true}}
	methodRules = map[string]map[string]bool{regogen.ModuleFile: {"exact_route": true, "fast_exact": true, "pattern_route": true}}
	headerRules = map[string]map[string]bool{corerego.CoreFile: {"up_header": true}, regogen.ModuleFile: {"fast_ups": true}}
)

var (
	pathRef   = ast.MustParseRef("input.request.path")
	methodRef = ast.MustParseRef("input.request.method")
	upRef     = ast.MustParseRef(`input.request.headers["` + upHeader + `"]`)
	mainRef   = ast.MustParseRef("data.ccauthz.main")
	genRef    = ast.MustParseRef("data.ccauthz.generated")
)

// requestReads checks that the method and path are read only by the routing
// rules and the unit-primitive header only by core.rego's up_header, and
// that no extra module reads the core's or the generated rules (which derive
// from them). It returns why the path, or the header, must be keyed raw.
func requestReads(c *ast.Compiler, extra []string) (rawPath, rawHeader string) {
	isExtra := setOf(extra)
	names := moduleNames(c)
	for _, name := range names {
		for _, rule := range c.Modules[name].Rules {
			head := rule.Head.Ref()[0].String()
			ast.WalkRefs(rule, func(ref ast.Ref) bool {
				where := fmt.Sprintf("%s rule %s reads %v", name, head, ref)
				switch {
				case isExtra[name] && (ref.HasPrefix(mainRef) || ref.HasPrefix(genRef)):
					if rawPath == "" {
						rawPath = where
					}
					if rawHeader == "" {
						rawHeader = where
					}
				case ref.HasPrefix(pathRef) && !pathRules[name][head], ref.HasPrefix(methodRef) && !methodRules[name][head]:
					if rawPath == "" {
						rawPath = where
					}
				case ref.HasPrefix(upRef) && !headerRules[name][head],
					ref.Equal(headersRef), len(ref) > 3 && ref.HasPrefix(headersRef) && !ref[3].IsGround():
					if rawHeader == "" {
						rawHeader = where
					}
				}
				return false
			})
		}
	}
	return rawPath, rawHeader
}

// agrees reports whether route, the route the evaluated decision names, is
// the one the Go matcher gave the cache key (always true when the key holds
// the raw method and path). It runs only before a decision is cached.
func (rk *routeKeys) agrees(in *Input, route string) bool {
	if rk.rawPath != "" {
		return true
	}
	m := rk.matcher.Match(in.Method, in.Path)
	if m.Route < 0 {
		return route == ""
	}
	return route == rk.plans[m.Route].id
}

// writeRequestKey appends the request part of a cache key: the method and
// path as the matched route and what its plan reads, the unit-primitive
// header as the plan says. body reports whether the body decides (a route
// with body rules: the core reads the body nowhere else). ok is false for a
// request the routing cannot answer (several routes match it equally: the
// policy fails on it), which is not cached.
func (rk *routeKeys) writeRequestKey(write func(string), in *Input, tokenValid bool) (body, ok bool) {
	if rk.rawPath != "" {
		write(in.Method)
		write(in.Path)
	}
	m := rk.matcher.Match(in.Method, in.Path)
	if m.Ambiguous {
		return false, false
	}
	v, present := in.Headers[upHeader]
	raw := func() {
		if present {
			write(v)
		} else {
			write("-") // absent differs from empty
		}
	}
	canonical := func() {
		if up, ok := rk.known[v]; ok && present {
			write(up)
		} else {
			write("") // absent or not a unit primitive: the policy cannot tell them apart here
		}
	}
	if m.Route < 0 {
		write("") // no route
		// Without a route the unit primitives checked are the header's.
		if rk.rawHeader != "" {
			raw()
		} else {
			canonical()
		}
		return false, true
	}
	pl := &rk.plans[m.Route]
	write("r" + pl.id)
	switch {
	case rk.rawHeader != "":
		raw()
	case pl.headerMode && tokenValid, pl.headerFallback && tokenValid:
		raw()
	case pl.headerMode:
		canonical()
	}
	if pl.prompt {
		if rk.prompts[m.Rest] {
			write(m.Rest)
		} else {
			write("-")
		}
	}
	if tokenValid {
		for _, i := range pl.params {
			write(m.Parts[i])
		}
		if pl.rest {
			write(m.Rest)
		}
	}
	return pl.body, true
}
