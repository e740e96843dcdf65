package ratelimit

import (
	"testing"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
)

// Engine and StartEngine expose the test engine to the external end-to-end
// test (package ratelimit_test, which may import authz/server).
type Engine = engine

// StartEngine starts Redis and envoyproxy/ratelimit (see startEngine).
func StartEngine(t *testing.T, config []byte) *Engine { return startEngine(t, config) }

// Should calls ShouldRateLimit (see should).
func (e *engine) Should(t *testing.T, domain string, ds []*rlcommonv3.RateLimitDescriptor) rlsv3.RateLimitResponse_Code {
	return e.should(t, domain, ds)
}
