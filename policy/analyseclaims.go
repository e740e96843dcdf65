package policy

import (
	"fmt"
	"slices"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
)

// claimsRef is the token's claims object in the policy input.
var claimsRef = ast.MustParseRef("input.token.claims")

// maxClaimAliasDepth bounds how many rules may stand for the claims object
// one through another (claims := input.token.claims; c := data.….claims).
const maxClaimAliasDepth = 8

// analyseClaims finds the claims the compiled policy reads, so that the
// decision cache keys on their values instead of the whole grant. A claim is
// read by a constant name: input.token.claims.<name> or ["<name>"],
// object.get(<claims>, "<name>", _), or <alias>.<name> where the alias is a
// local or a rule that stands for the whole claims object and is used for
// nothing else (is_object(<alias>) aside: the claims are always an object).
// The generated rule header_mismatch is left out: the cache keys on the
// bindings' outcome (identity.Mismatch). Any other read (a variable name,
// the claims or the token as a whole, passed to a function) makes dynamic
// say where; the cache then keys on the grant digest as before, unless
// inExtra: a dynamic read in an extra module may see the per-token claims
// the grant digest leaves out (jti, exp, …), so the cache keys on the token
// hash.
func analyseClaims(c *ast.Compiler, extra []string) (claims []string, dynamic string, inExtra bool) {
	type unit struct {
		name string
		node any
	}
	names := moduleNames(c)
	var units []unit
	for _, name := range names {
		mod := c.Modules[name]
		if name != regogen.ModuleFile {
			units = append(units, unit{name, mod})
			continue
		}
		for _, rule := range mod.Rules {
			if !rule.Head.Name.Equal(ast.Var("header_mismatch")) {
				units = append(units, unit{name, rule})
			}
		}
	}
	sources := []ast.Ref{claimsRef}
	for range maxClaimAliasDepth {
		a := claimAnalysis{sources: sources, claims: map[string]bool{}}
		for _, u := range units {
			a.unit(u.name, u.node)
			if a.dynamic != "" {
				return nil, a.dynamic, slices.Contains(extra, u.name)
			}
		}
		if len(a.aliases) == 0 {
			for n := range a.claims {
				claims = append(claims, n)
			}
			sort.Strings(claims)
			return claims, "", false
		}
		sources = append(sources, a.aliases...)
	}
	return nil, "rules stand for input.token.claims too many times over", len(extra) > 0
}

// claimAnalysis is one pass of analyseClaims over every unit.
type claimAnalysis struct {
	sources []ast.Ref // the claims object and the rules known to stand for it
	claims  map[string]bool
	aliases []ast.Ref // rules found this pass to stand for the claims object
	dynamic string
}

func (a *claimAnalysis) fail(name string, loc *ast.Location, format string, args ...any) {
	if a.dynamic != "" {
		return
	}
	where := name
	if loc != nil {
		where = fmt.Sprintf("%s:%d", name, loc.Row)
	}
	a.dynamic = where + " " + fmt.Sprintf(format, args...)
}

// source reports how a ref relates to the claims sources: n > 0 when its
// first n terms are one (n == len(ref): the whole object), may when it could
// reach one through a variable or by naming a prefix of it.
func (a *claimAnalysis) source(ref ast.Ref) (n int, may bool) {
	for _, s := range a.sources {
		match, exact := true, true
		for i := 0; i < len(s) && i < len(ref); i++ {
			if i > 0 && !ref[i].IsGround() {
				exact = false
				continue
			}
			if !ref[i].Equal(s[i]) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if exact && len(ref) >= len(s) {
			return len(s), false
		}
		may = true
	}
	return 0, may
}

// unit analyses one module, or one rule of the generated module.
func (a *claimAnalysis) unit(name string, node any) {
	// Locals that stand for the claims object: V = <source>.
	defs := map[*ast.Expr]ast.Var{}
	ast.WalkExprs(node, func(e *ast.Expr) bool {
		if !e.IsEquality() {
			return false
		}
		terms := e.Terms.([]*ast.Term)
		for _, pair := range [][2]*ast.Term{{terms[1], terms[2]}, {terms[2], terms[1]}} {
			v, isVar := pair[0].Value.(ast.Var)
			r, isRef := pair[1].Value.(ast.Ref)
			if isVar && isRef {
				if n, _ := a.source(r); n > 0 && n == len(r) {
					defs[e] = v
				}
			}
		}
		return false
	})
	locals := map[ast.Var]bool{}
	for _, v := range defs {
		locals[v] = true
	}
	uses := map[ast.Var]int{}     // every occurrence of a local
	accepted := map[ast.Var]int{} // occurrences read by a constant name (or defining it)
	call := func(terms []*ast.Term, loc *ast.Location) {
		if len(terms) < 2 {
			return
		}
		op, ok := terms[0].Value.(ast.Ref)
		if !ok {
			return
		}
		v, isLocal := terms[1].Value.(ast.Var)
		if !isLocal || !locals[v] {
			return
		}
		switch op.String() {
		case ast.ObjectGet.Name:
			if len(terms) < 3 {
				return
			}
			if key, ok := terms[2].Value.(ast.String); ok {
				a.claims[string(key)] = true
				accepted[v]++
			} else {
				a.fail(name, loc, "reads input.token.claims by a variable name")
			}
		case ast.IsObject.Name:
			accepted[v]++
		}
	}
	ast.NewGenericVisitor(func(x any) bool {
		switch t := x.(type) {
		case *ast.Package, *ast.Import:
			return true // names, not reads (the compiler resolved every import)
		case *ast.Rule:
			// A rule whose value is a local standing for the claims object
			// stands for it too: its own reads are checked in the next pass.
			if t.Head.Value == nil {
				return false
			}
			if v, ok := t.Head.Value.Value.(ast.Var); ok && locals[v] && len(t.Head.Args) == 0 && t.Head.Key == nil && t.Module != nil {
				accepted[v]++
				path := t.Module.Package.Path.Extend(t.Head.Ref())
				if n, _ := a.source(path); n == 0 {
					a.aliases = append(a.aliases, path)
				}
			}
		case *ast.Expr:
			if v, ok := defs[t]; ok {
				accepted[v]++
				uses[v]++
				return true // its source ref is the definition, not a read
			}
			if terms, ok := t.Terms.([]*ast.Term); ok && t.IsCall() {
				call(terms, t.Location)
			}
		case ast.Call:
			call(t, nil)
		case ast.Var:
			if locals[t] {
				uses[t]++
			}
		case ast.Ref:
			a.ref(name, t, locals, accepted)
		}
		return false
	}).Walk(node)
	for v := range locals {
		if uses[v] != accepted[v] {
			a.fail(name, nil, "passes input.token.claims on as a whole (%s)", v)
		}
	}
}

// ref analyses one reference: a constant claim, or a dynamic read.
func (a *claimAnalysis) ref(name string, ref ast.Ref, locals map[ast.Var]bool, accepted map[ast.Var]int) {
	loc := ref[0].Location
	if v, ok := ref[0].Value.(ast.Var); ok && locals[v] {
		if len(ref) > 1 {
			if key, ok := ref[1].Value.(ast.String); ok {
				a.claims[string(key)] = true
				accepted[v]++
				return
			}
		}
		a.fail(name, loc, "reads input.token.claims by a variable name")
		return
	}
	n, may := a.source(ref)
	switch {
	case n > 0 && len(ref) > n:
		if key, ok := ref[n].Value.(ast.String); ok {
			a.claims[string(key)] = true
			return
		}
		a.fail(name, loc, "reads input.token.claims by a variable name")
	case n > 0:
		a.fail(name, loc, "reads input.token.claims as a whole")
	case may:
		a.fail(name, loc, "reads %v, which may include input.token.claims", ref)
	}
}

// readsIdentityThroughCore reports whether an extra module reads a rule of
// the core package whose value depends on input.identity (identity itself,
// subject, claim_realm, the rate-limit entries, the decision, …), or the core
// package by a variable name: such a module decides on the identity, which
// must then be part of the key like a direct read of input.identity.
func readsIdentityThroughCore(c *ast.Compiler, extra []string) (bool, string) {
	core, ok := c.Modules[corerego.CoreFile]
	if !ok || len(extra) == 0 {
		return false, ""
	}
	pkg := core.Package.Path
	ruleName := func(r *ast.Rule) string {
		if ref := r.Head.Ref(); len(ref) > 0 {
			if v, ok := ref[0].Value.(ast.Var); ok {
				return string(v)
			}
		}
		return ""
	}
	deps := map[string]map[string]bool{}
	tainted := map[string]bool{}
	for _, rule := range core.Rules {
		name := ruleName(rule)
		if deps[name] == nil {
			deps[name] = map[string]bool{}
		}
		ast.WalkRefs(rule, func(r ast.Ref) bool {
			switch {
			case r[0].Equal(ast.InputRootDocument) && (len(r) == 1 || r[1].Equal(ast.StringTerm("identity"))):
				tainted[name] = true
			case len(r) > len(pkg) && r.HasPrefix(pkg):
				if s, ok := r[len(pkg)].Value.(ast.String); ok {
					deps[name][string(s)] = true
				}
			}
			return false
		})
	}
	for changed := true; changed; {
		changed = false
		for name, ds := range deps {
			if tainted[name] {
				continue
			}
			for d := range ds {
				if tainted[d] {
					tainted[name], changed = true, true
					break
				}
			}
		}
	}
	why := ""
	for _, name := range extra {
		ast.WalkRefs(c.Modules[name], func(r ast.Ref) bool {
			if why != "" || !r[0].Equal(ast.DefaultRootDocument) {
				return false
			}
			for i := 1; i < len(pkg) && i < len(r); i++ {
				if r[i].IsGround() && !r[i].Equal(pkg[i]) {
					return false
				}
			}
			if len(r) <= len(pkg) {
				why = fmt.Sprintf("%s reads %v", name, r)
				return false
			}
			if s, ok := r[len(pkg)].Value.(ast.String); !ok || tainted[string(s)] {
				why = fmt.Sprintf("%s reads %v", name, r)
			}
			return false
		})
	}
	return why != "", why
}
