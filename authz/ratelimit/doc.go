// Package ratelimit owns per-scope rate limiting: the descriptor layout that
// ccauthz emits for Envoy's rate-limit filter (Layout), the limits compiled
// from a manifest (Plan), the envoyproxy/ratelimit configuration and Envoy
// route actions generated from them (GenerateConfig, EnvoyRateLimits), the
// emulation of Envoy's `metadata` rate-limit action (EnvoyDescriptors, used
// to test the hand-off end to end against the real engine), and the embedded
// token-bucket limiter for single nodes (Limiter).
//
// It must not verify tokens or evaluate policy: it receives a decision's
// descriptor entries and answers whether a limit tripped.
package ratelimit
