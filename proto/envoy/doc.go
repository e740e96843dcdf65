// Package envoy maps Envoy's ext_authz v3 wire protocol to ccauthz's decision
// contract and back: a CheckRequest becomes a policy.Input (no reflection, no
// JSON), and a policy.Decision becomes a CheckResponse (OkHttpResponse or
// DeniedHttpResponse, with dynamic metadata whose leaves are strings so Envoy's
// rate-limit metadata actions can read them). Both directions exist twice: through
// go-control-plane's messages (MapRequest, Response: the reference, used in
// process) and straight on the protobuf wire (DecodeCheckRequest, AppendWire: the
// gRPC listener's hot path), which tests hold equal. It owns only the mapping: it
// does not verify tokens, evaluate policy, choose backends or log.
package envoy
