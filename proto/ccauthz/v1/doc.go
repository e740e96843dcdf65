// Package ccauthzv1 is ccauthz's own API, package ccauthz.v1: the Go code
// generated from the .proto files beside it (`make proto`; `make
// proto-check` fails when it is stale). Only this doc.go is hand-written;
// the services are implemented in authz/api.
package ccauthzv1
