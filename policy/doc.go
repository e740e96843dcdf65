// Package policy owns the authorization decision: the decision contract
// (Input, Decision, reason codes), building a Policy from a catalog, a service
// manifest and optional extra Rego modules (generate, compile once, prepare
// the query), and evaluating it per request with the input built directly as
// a Rego value and a bounded decision cache keyed on exactly what the compiled
// policy reads. It must not verify tokens or speak Envoy: callers hand it the
// verification outcome and map the Decision to their protocol.
package policy
