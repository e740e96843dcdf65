// Package catalog owns the unit-primitive catalog: the model of unit primitives,
// backend services, add-ons, license types and (legacy) services, the loaders for
// the three shapes GitLab publishes it in (the gitlab-cloud-connector YAML layout,
// the legacy access_data.yml, and the JSON an instance receives on sync), the
// positioned validation of all of them, and the queries the rest of ccauthz asks
// (a backend's unit primitives, a unit primitive's audiences, free access at a
// time, the scopes an issuer grants for a set of add-ons).
//
// It must not know about tokens, Rego or Envoy: it is pure data and queries, and a
// loaded *Catalog is immutable, so it can be shared between goroutines freely.
package catalog
