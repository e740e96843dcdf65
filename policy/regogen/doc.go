// Package regogen owns the Rego generated from a catalog and a bound service
// manifest: the data module (package ccauthz.generated) the core policy reads,
// and the `opa test` suites that prove each route's allows and denials. Its
// output is deterministic (sorted, stable, `opa fmt` formatted) and stamped
// with the generator version and the SHA-256 of its inputs. It must not
// compile or evaluate Rego; package policy does that.
package regogen
