// Package server is the ext_authz gRPC server and its admin HTTP listener: it
// chooses the protected backend of each Check, verifies the token through a
// Verifier, decides through the backend's Decider, and answers on the wire via
// proto/envoy. It owns the per-backend snapshot (behind an atomic.Pointer),
// reload (build aside, validate, swap, keep the last good), the gRPC health
// service, Prometheus metrics, decision logs and the drain on shutdown. It
// does not parse catalogs, manifests or tokens itself: it consumes them
// through the small interfaces declared in seams.go.
package server
