// Package ratelimit owns per-scope rate limiting: the descriptor layout that
// ccauthz emits for Envoy's rate-limit filter, the envoyproxy/ratelimit
// configuration generated from a manifest's limits, the emulation of Envoy's
// `metadata` rate-limit action (used to test the hand-off end to end), and the
// embedded token-bucket limiter for single nodes.
//
// It must not verify tokens or evaluate policy: it receives a decision's
// descriptor entries and answers whether a limit tripped.
package ratelimit
