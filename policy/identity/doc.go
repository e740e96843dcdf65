// Package identity owns the identity step of a check: who is calling
// (instance id, global user id, realm, seat bucket, and the subject and
// claim realm the upstream headers carry), computed once per check
// from the verified claims, a request header only when the token carries no
// such claim, and where each value came from (for the decision log). It also
// computes the outcome of the manifest's claim↔header bindings, which the
// decision cache keys on instead of the bound headers' values. It must not
// verify tokens, evaluate Rego or speak any wire protocol: the policy hands it
// the verification outcome and the request headers.
package identity
