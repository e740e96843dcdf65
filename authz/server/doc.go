// Package server is the ext_authz gRPC server, the HTTP check listener
// (Envoy http_service, nginx auth_request, forward-auth, POST /v1/check) and
// the admin HTTP listener: it chooses the protected backend of each check,
// verifies the token through a Verifier, decides through the backend's
// Decider, and answers on the wire via proto/envoy or proto/httpcheck. Every
// protocol runs the one pipeline in check.go; only reading the request and
// writing the answer differ. It owns the per-backend snapshot (behind an atomic.Pointer),
// reload (build aside, validate, swap, keep the last good), the gRPC health
// service, Prometheus metrics, decision logs and the drain on shutdown. It
// does not parse catalogs, manifests or tokens itself: it consumes them
// through the small interfaces declared in seams.go.
package server
