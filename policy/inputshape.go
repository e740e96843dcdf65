package policy

import (
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"

	corerego "github.com/ccauthz/ccauthz/policy/rego"
)

// inputShape is what of a request's headers and claims the compiled policy
// can read. Building the Rego input converts every value it carries to an
// ast term, so Decide leaves out the headers and claims no rule can reach:
// a request usually carries a dozen headers and a token a dozen claims, the
// policy reads four of each. A nil list means every one is given.
type inputShape struct {
	headers []string // lower-case header names, sorted; nil: all
	claims  []string // claim names, sorted; nil: all
	// terms holds one immutable term for every string the compiled modules
	// name (header and claim names, unit primitives, methods, paths,
	// statuses, realms): the input shares them instead of allocating a
	// term per value per check. Evaluation never modifies input terms.
	terms map[string]*ast.Term
}

// inputKeys are the object keys of the input document valueOf builds.
var inputKeys = [...]string{
	"backend", "request", "token", "identity",
	"method", "path", "query", "host", "headers", "body_status", "body",
	"status", "reason", "issuer", "kind", "claims",
	"instance_id", "global_user_id", "realm", "seat_bucket", "subject", "claim_realm",
}

// term is s as a Rego term, shared when the policy names it.
func (s *inputShape) term(v string) *ast.Term {
	if t, ok := s.terms[v]; ok {
		return t
	}
	return ast.StringTerm(v)
}

// claimsRule is the core rule that aliases the verified claims
// (data.ccauthz.main.claims): reads through it by a constant key count as
// reads of that claim.
var claimsRule = ast.MustParseRef("data.ccauthz.main.claims")

var tokenClaimsRef = ast.MustParseRef("input.token.claims")

// newInputShape derives the shape from the compiled modules. Headers come
// from the cache analysis (r): when it could not pin them down (r is not
// cacheable) every header is given. Claims are found here: every reference to
// input.token.claims or to the core's claims rule must name its claim by a
// constant; the one exception is the claims rule's own definition. Anything
// else (a whole-claims read, a variable key, a read of input.token or of the
// whole input, an extra module reading data.ccauthz.main) gives every claim.
func newInputShape(c *ast.Compiler, r reads) inputShape {
	var s inputShape
	if r.cacheable() {
		s.headers = append(append([]string{}, r.headers...), r.bindingHeaders...)
		sort.Strings(s.headers)
	}
	s.terms = map[string]*ast.Term{}
	claims := map[string]bool{}
	all := false
	for name, mod := range c.Modules {
		ast.WalkTerms(mod, func(t *ast.Term) bool {
			if v, ok := t.Value.(ast.String); ok {
				s.terms[string(v)] = ast.StringTerm(string(v))
			}
			return false
		})
		for _, rule := range mod.Rules {
			inClaimsRule := name == corerego.CoreFile && rule.Head.Ref().Equal(ast.Ref{ast.VarTerm("claims")})
			ast.WalkRefs(rule, func(ref ast.Ref) bool {
				switch {
				case ref[0].Equal(ast.InputRootDocument):
					claimRead(ref, tokenClaimsRef, inClaimsRule, claims, &all)
				case ref[0].Equal(ast.DefaultRootDocument):
					claimRead(ref, claimsRule, false, claims, &all)
				}
				return false
			})
		}
	}
	if !all {
		s.claims = make([]string, 0, len(claims))
		for k := range claims {
			s.claims = append(s.claims, k)
		}
		sort.Strings(s.claims)
	}
	for _, k := range s.headers {
		s.terms[k] = ast.StringTerm(k)
	}
	// The input document's own keys (valueOf), which OPA does not intern.
	for _, k := range inputKeys {
		if _, ok := s.terms[k]; !ok {
			s.terms[k] = ast.StringTerm(k)
		}
	}
	return s
}

// claimRead records what ref reads under base (input.token.claims or the
// claims rule): a constant claim name, or all of them. A ref that stops at
// or above base (or leaves the path by a variable) reads everything below
// it; whole is true where that is allowed (the claims rule itself).
func claimRead(ref, base ast.Ref, whole bool, claims map[string]bool, all *bool) {
	for i := 1; i < len(base); i++ {
		if i >= len(ref) {
			*all = true // a read of a document that contains the claims
			return
		}
		if _, ok := ref[i].Value.(ast.String); !ok {
			*all = true // a variable key: it can reach the claims
			return
		}
		if !ref[i].Equal(base[i]) {
			return // another document
		}
	}
	if len(ref) == len(base) {
		if !whole {
			*all = true
		}
		return
	}
	k, ok := ref[len(base)].Value.(ast.String)
	if !ok {
		*all = true
		return
	}
	claims[string(k)] = true
}
