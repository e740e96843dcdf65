package server

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/policy"
)

// Verifier verifies the Authorization header of a request for one audience.
// It is implemented by *token.Verifier.
type Verifier interface {
	Verify(ctx context.Context, authorization, audience string) token.Result
}

// Decider evaluates the policy of one backend. It is implemented by
// *policy.Policy.
type Decider interface {
	Decide(ctx context.Context, in *policy.Input) (policy.Decision, error)
	Revision() string
}

// Clock tells the time; tests pass a fixed or stepping clock.
type Clock func() time.Time

// Stats is what the token and key packages report for the metrics endpoint.
// It is read at scrape time, never on the check path.
type Stats interface {
	// TokenCache returns the verified-token cache's hit and miss counts.
	TokenCache() (hits, misses uint64)
	// Issuers returns the key status of every configured issuer.
	Issuers() []IssuerStats
}

// IssuerStats is the key-cache status of one issuer.
type IssuerStats struct {
	Name     string
	Fetches  uint64
	Failures uint64
	// LastSuccess is when keys were last fetched successfully (zero: never).
	LastSuccess time.Time
	// Ready is true when the issuer's keys are fresh enough to verify.
	Ready bool
}

// Builder builds a complete snapshot of every backend from the current
// inputs on disk (catalog, manifests, extra Rego). It is called at start and
// on every reload; it must validate fully and never return a partial snapshot.
type Builder func(ctx context.Context) (*Snapshot, error)

// APIServices are the APIs served beside the checks (ccauthz.v1, see
// authz/api): registered on the gRPC server and mounted on the admin mux,
// once each, when Serve starts.
type APIServices interface {
	RegisterGRPC(gs *grpc.Server)
	AdminRoutes(mux *http.ServeMux)
}
