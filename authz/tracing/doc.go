// Package tracing builds the OpenTelemetry tracer provider ccauthz exports
// its spans with (OTLP over gRPC or HTTP, parent-based ratio sampling, a
// batch processor) from the `tracing` config section, and owns the span
// and attribute names every package uses. It must not start spans on the
// check path itself: the server, the verifier and the key caches do, and
// only when handed a tracer, so tracing off costs nothing.
package tracing
