package policy

import (
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
)

// reads is what the compiled policy reads from its input, found by walking
// every reference in the compiled modules. The decision cache keys on exactly
// these fields; if any read cannot be pinned down (a header read by a
// variable key, the whole input) or the policy calls a non-deterministic
// builtin, the cache is disabled and disabled says why.
type reads struct {
	headers []string // constant header keys, sorted
	// bindingHeaders are the headers only the generated claim↔header bindings
	// (rule header_mismatch) read: the cache keys on the bindings' outcome
	// (identity.Mismatch) instead of their values. A header read anywhere
	// else too is in headers.
	bindingHeaders []string
	// identity is true when an extra module reads input.identity: then the
	// identity values are part of the key (the core and generated modules
	// only copy them into the decision, which Decide refills after the cache).
	identity bool
	// body is true when an extra module reads input.request.body or
	// body_status (the core and generated rules read it only through the
	// manifest's body rules: Policy.ReadsBody).
	body     bool
	query    bool
	host     bool
	disabled string

	// claims are the token claims the policy reads by constant name
	// (analyseClaims), sorted: the cache keys a token on their values.
	// claimsDynamic says why that cannot be pinned down; the cache then
	// keys on the grant digest (or the token hash).
	claims        []string
	claimsDynamic string
	// claimsExtra is true when the dynamic read is in an extra module: then
	// not even the grant digest may key (the read may see jti or exp).
	claimsExtra bool
}

func (r reads) cacheable() bool { return r.disabled == "" }

// nondeterministic reports builtins whose result depends on more than their
// arguments, in addition to those OPA marks Nondeterministic.
func nondeterministic(name string) bool {
	switch name {
	case "time.now_ns", "http.send", "rand.intn", "uuid.rfc4122", "opa.runtime",
		"net.lookup_ip_addr", "io.jwt.decode_verify",
		"crypto.x509.parse_and_verify_certificates",
		"crypto.x509.parse_and_verify_certificates_with_options":
		return true
	}
	return false
}

func analyse(c *ast.Compiler, extra []string) reads {
	var r reads
	isExtra := setOf(extra)
	headers := map[string]bool{}
	disable := func(format string, args ...any) {
		if r.disabled == "" {
			r.disabled = fmt.Sprintf(format, args...)
		}
	}
	names := moduleNames(c)
	bindingHeaders := map[string]bool{}
	for _, name := range names {
		mod := c.Modules[name]
		// The generated module's header_mismatch rule is the manifest's
		// bindings: what it reads is keyed by its outcome. Every other rule,
		// and every other module, is keyed on what it reads.
		units := []any{mod}
		if name == regogen.ModuleFile {
			units = units[:0]
			for _, rule := range mod.Rules {
				units = append(units, rule)
			}
		}
		for _, unit := range units {
			target := headers
			if rule, ok := unit.(*ast.Rule); ok && rule.Head.Name.Equal(ast.Var("header_mismatch")) {
				target = bindingHeaders
			}
			analyseUnit(unit, name, isExtra[name], target, &r, disable)
		}
		ast.WalkTerms(mod, func(t *ast.Term) bool {
			call, ok := t.Value.(ast.Call)
			if !ok || len(call) == 0 {
				return false
			}
			if ref, ok := call[0].Value.(ast.Ref); ok {
				checkCall(ref, name, disable)
			}
			return false
		})
		ast.WalkExprs(mod, func(e *ast.Expr) bool {
			if e.IsCall() {
				checkCall(e.Operator(), name, disable)
			}
			return false
		})
	}
	for h := range headers {
		r.headers = append(r.headers, h)
	}
	sort.Strings(r.headers)
	for h := range bindingHeaders {
		if !headers[h] {
			r.bindingHeaders = append(r.bindingHeaders, h)
		}
	}
	sort.Strings(r.bindingHeaders)
	r.claims, r.claimsDynamic, r.claimsExtra = analyseClaims(c, extra)
	if through, _ := readsIdentityThroughCore(c, extra); through {
		r.identity = true
	}
	return r
}

// analyseUnit records what one module, or one rule of the generated module,
// reads of the input: headers into target, the rest into r. extra is true
// for an extra module (which may not read the request body).
func analyseUnit(unit any, name string, extra bool, target map[string]bool, r *reads, disable func(string, ...any)) {
	{
		// object.get(input.request.headers, "<constant>", default) reads one
		// header by a constant name, like input.request.headers["<constant>"].
		// The compiler hoists the ref into a local first
		// (__localN__ = input.request.headers); such an assignment is accepted
		// when every use of the local is the object of an object.get with a
		// constant key.
		accepted := constantHeaderLocals(unit, target)
		refs := func(visit func(ast.Ref) bool) {
			ast.NewGenericVisitor(func(x any) bool {
				switch t := x.(type) {
				case *ast.Expr:
					return accepted[t]
				case ast.Ref:
					visit(t)
				}
				return false
			}).Walk(unit)
		}
		refs(func(ref ast.Ref) bool {
			if !ref[0].Equal(ast.InputRootDocument) {
				return false
			}
			loc := name
			if ref[0].Location != nil {
				loc = fmt.Sprintf("%s:%d", name, ref[0].Location.Row)
			}
			if len(ref) == 1 {
				disable("%s reads the whole input", loc)
				return false
			}
			top, ok := ref[1].Value.(ast.String)
			if !ok {
				disable("%s reads input by a variable key", loc)
				return false
			}
			if top == "identity" {
				// The core and generated modules copy the identity into the
				// decision; anything else reading it makes it part of the key.
				if name != corerego.CoreFile && name != regogen.ModuleFile {
					r.identity = true
				}
				return false
			}
			if top != "request" {
				return false // backend and token are always part of the key
			}
			if len(ref) == 2 {
				disable("%s reads the whole input.request", loc)
				return false
			}
			field, ok := ref[2].Value.(ast.String)
			if !ok {
				disable("%s reads input.request by a variable key", loc)
				return false
			}
			switch field {
			case "body", "body_status":
				// The core and the generated body rules read the body by the
				// manifest's selectors, which the key covers; an extra
				// module could read any of it.
				if extra {
					r.body = true
					disable("%s reads the request body", loc)
				}
			case "query":
				r.query = true
			case "host":
				r.host = true
			case "headers":
				if len(ref) == 3 {
					disable("%s reads input.request.headers as a whole", loc)
					return false
				}
				key, ok := ref[3].Value.(ast.String)
				if !ok {
					disable("%s reads a header by a variable name", loc)
					return false
				}
				target[string(key)] = true
			}
			return false
		})
	}
}

var headersRef = ast.MustParseRef("input.request.headers")

// constantHeaderLocals finds `__localN__ = input.request.headers` assignments
// whose local is only ever used as object.get(__localN__, "<constant>", _),
// records those constant header names, and returns the accepted assignments.
func constantHeaderLocals(mod any, headers map[string]bool) map[*ast.Expr]bool {
	assigns := map[ast.Var]*ast.Expr{}
	ast.WalkExprs(mod, func(e *ast.Expr) bool {
		if !e.IsEquality() {
			return false
		}
		terms := e.Terms.([]*ast.Term)
		for _, pair := range [][2]*ast.Term{{terms[1], terms[2]}, {terms[2], terms[1]}} {
			v, isVar := pair[0].Value.(ast.Var)
			r, isRef := pair[1].Value.(ast.Ref)
			if isVar && v.IsGenerated() && isRef && r.Equal(headersRef) {
				assigns[v] = e
			}
		}
		return false
	})
	if len(assigns) == 0 {
		return nil
	}
	uses := map[ast.Var]int{}    // every occurrence of the local
	getUses := map[ast.Var]int{} // occurrences as a constant-key object.get object
	keys := map[ast.Var][]string{}
	checkCall := func(terms []*ast.Term) {
		if len(terms) < 3 {
			return
		}
		op, ok := terms[0].Value.(ast.Ref)
		if !ok || op.String() != ast.ObjectGet.Name {
			return
		}
		v, ok := terms[1].Value.(ast.Var)
		if _, tracked := assigns[v]; !ok || !tracked {
			return
		}
		if key, ok := terms[2].Value.(ast.String); ok {
			getUses[v]++
			keys[v] = append(keys[v], string(key))
		}
	}
	ast.NewGenericVisitor(func(x any) bool {
		switch t := x.(type) {
		case *ast.Expr:
			if terms, ok := t.Terms.([]*ast.Term); ok && t.IsCall() {
				checkCall(terms)
			}
		case ast.Call:
			checkCall(t)
		case ast.Var:
			if _, tracked := assigns[t]; tracked {
				uses[t]++
			}
		}
		return false
	}).Walk(mod)
	accepted := map[*ast.Expr]bool{}
	for v, e := range assigns {
		if getUses[v] > 0 && uses[v] == getUses[v]+1 {
			accepted[e] = true
			for _, k := range keys[v] {
				headers[k] = true
			}
		}
	}
	return accepted
}

func checkCall(ref ast.Ref, module string, disable func(string, ...any)) {
	name := ref.String()
	b, builtin := ast.BuiltinMap[name]
	if nondeterministic(name) || (builtin && b.Nondeterministic) {
		disable("%s calls the non-deterministic builtin %s", module, name)
	}
}

// grantKeyable reports whether decisions may be keyed on a token's grant
// digest (its claims without jti, iat, nbf and exp) instead of its hash: when
// no module can tell two tokens of the same grant apart. Extra modules must
// not read input.token at all (what they do with it cannot be pinned down);
// the core and generated modules must never name a per-token claim. If either
// fails, decisions stay keyed on the token hash, which is always sound.
func grantKeyable(c *ast.Compiler, extra []string, perToken []string) (bool, string) {
	isExtra := setOf(extra)
	names := moduleNames(c)
	for _, name := range names {
		mod := c.Modules[name]
		why := ""
		if isExtra[name] {
			ast.WalkRefs(mod, func(ref ast.Ref) bool {
				if why == "" && ref[0].Equal(ast.InputRootDocument) &&
					(len(ref) == 1 || !ref[1].Equal(ast.StringTerm("request")) && !ref[1].Equal(ast.StringTerm("backend"))) {
					why = fmt.Sprintf("%s reads %v", name, ref)
				}
				return false
			})
		} else {
			ast.WalkTerms(mod, func(t *ast.Term) bool {
				if s, ok := t.Value.(ast.String); ok && why == "" {
					for _, p := range perToken {
						if string(s) == p {
							why = fmt.Sprintf("%s names the per-token claim %q", name, p)
						}
					}
				}
				return false
			})
		}
		if why != "" {
			return false, why
		}
	}
	return true, ""
}

// moduleNames returns the compiled modules' file names, sorted, so that
// analyses visit them (and report the first offending read) deterministically.
func moduleNames(c *ast.Compiler) []string {
	names := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// setOf returns the strings of list as a set.
func setOf(list []string) map[string]bool {
	set := make(map[string]bool, len(list))
	for _, s := range list {
		set[s] = true
	}
	return set
}
