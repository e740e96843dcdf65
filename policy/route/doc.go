// Package route owns request routing in Go: a Matcher built from a bound
// service manifest that finds the route a request (method and path) matches,
// its {param} values and the path its final "*" matched, exactly as the
// generated Rego routing does (policy/regogen exact_route and pattern_route,
// core.rego matched). The decision cache keys on its answer instead of the raw
// path; the Rego routing stays the authority for the decision itself. It must
// not evaluate policy or read anything but the method and the path.
package route
