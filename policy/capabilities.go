package policy

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
)

// ErrBuiltinNotAllowed is wrapped by Build when an extra module calls a
// builtin of ExcludedBuiltins that BuildOptions.AllowBuiltins does not
// allow.
var ErrBuiltinNotAllowed = errors.New("builtin not allowed in extra Rego")

// ExcludedBuiltins are the builtins extra modules may not call unless the
// backend allows them by name: every builtin OPA marks non-deterministic —
// network access (http.send, net.lookup_ip_addr, json.match_schema's remote
// references), the runtime environment (opa.runtime, which exposes the
// process environment), randomness (rand.intn, uuid.rfc4122, signing), and
// the clock (time.now_ns, io.jwt.decode_verify). A check must depend only on
// its input: such a call makes the decision cache wrong, can leak the
// request to the network, or block a check on a remote server. Sorted.
func ExcludedBuiltins() []string {
	var out []string
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		if b.Nondeterministic {
			out = append(out, b.Name)
		}
	}
	sort.Strings(out)
	return out
}

// capabilities are OPA's capabilities without the excluded builtins that
// allow does not name. Unknown names in allow are an error.
func capabilities(allow []string) (*ast.Capabilities, error) {
	excluded := ExcludedBuiltins()
	for _, name := range allow {
		if !slices.Contains(excluded, name) {
			return nil, fmt.Errorf("policy: extra_rego_builtins: %q is not an excluded builtin (excluded: %v)", name, excluded)
		}
	}
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if !b.Nondeterministic || slices.Contains(allow, b.Name) {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	return caps, nil
}

// checkExtraBuiltins reports, positioned, every call in the extra modules
// to an excluded builtin that allow does not name. (The compiler's
// capabilities would refuse them too, as "undefined function"; this says
// why and how to allow one.)
func checkExtraBuiltins(modules map[string]*ast.Module, extraFiles, allow []string) error {
	excluded := ExcludedBuiltins()
	var errs []error
	for _, name := range extraFiles {
		ast.WalkRefs(modules[name], func(ref ast.Ref) bool {
			if _, isVar := ref[0].Value.(ast.Var); !isVar {
				return false
			}
			op := ref.String()
			if slices.Contains(excluded, op) && !slices.Contains(allow, op) {
				loc := ref[0].Location
				pos := name
				if loc != nil {
					pos = fmt.Sprintf("%s:%d:%d", name, loc.Row, loc.Col)
				}
				errs = append(errs, fmt.Errorf("%s: %s is a network or non-deterministic builtin; list it in the backend's extra_rego_builtins to allow it: %w", pos, op, ErrBuiltinNotAllowed))
			}
			return false
		})
	}
	return errors.Join(errs...)
}
