package server

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/authz/ratelimit"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/proto/envoy"
)

// Backend is one protected backend in a snapshot. It is immutable once the
// snapshot is built.
type Backend struct {
	// Name is the backend name from the config (context_extensions["backend"]).
	Name string
	// Audience is the jwt_aud tokens must carry for this backend.
	Audience string
	// Hosts select this backend by the request's host (port ignored, case
	// insensitive) when no context extension names one.
	Hosts []string
	// Issuers restricts the issuer names whose tokens this backend accepts;
	// empty accepts every issuer the verifier trusts. A valid token from
	// another issuer reaches the policy as invalid (unknown_issuer).
	Issuers []string
	// DryRun: decisions are computed and logged, never enforced.
	DryRun bool
	// GRPC marks a gRPC backend (manifest protocol: grpc): denials are
	// answered as gRPC statuses (docs/grpc-backends.md).
	GRPC bool
	// Decider is the backend's compiled policy.
	Decider Decider
	// Ready reports whether the backend can decide with fresh keys; nil
	// means always ready. It is called by the readiness loop, not per check.
	Ready func() error
	// RateLimits are the backend's limits for the local rate limiter; nil
	// means none.
	RateLimits *ratelimit.Plan
	// Manifest is the service manifest the policy was built from, kept for
	// the unit-primitive directory (never read on the check path); nil
	// when unknown.
	Manifest *manifest.Manifest

	meta     *envoy.BackendMeta
	counters *backendCounters
}

// Snapshot is the immutable set of backends a server decides with.
type Snapshot struct {
	backends map[string]*Backend
	byHost   map[string]*Backend
	single   *Backend
	names    []string
	// Built is when the snapshot was built.
	Built time.Time
	// Catalog is the catalog the snapshot's policies were built from (nil
	// if the builder does not say); the API and directory read it.
	Catalog *catalog.Catalog
}

// NewSnapshot validates and indexes backends: names must be non-empty and
// unique, hosts unique across backends, and every backend needs a Decider.
func NewSnapshot(backends []*Backend, built time.Time) (*Snapshot, error) {
	s := &Snapshot{backends: map[string]*Backend{}, byHost: map[string]*Backend{}, Built: built}
	var errs []error
	for i, b := range backends {
		switch {
		case b == nil || b.Name == "":
			errs = append(errs, fmt.Errorf("backend %d: no name", i))
			continue
		case s.backends[b.Name] != nil:
			errs = append(errs, fmt.Errorf("backend %q: configured twice", b.Name))
			continue
		case b.Decider == nil:
			errs = append(errs, fmt.Errorf("backend %q: no policy", b.Name))
			continue
		}
		s.backends[b.Name] = b
		s.names = append(s.names, b.Name)
		for _, h := range b.Hosts {
			h = normalizeHost(h)
			if other, dup := s.byHost[h]; dup {
				errs = append(errs, fmt.Errorf("host %q: claimed by backends %q and %q", h, other.Name, b.Name))
				continue
			}
			s.byHost[h] = b
		}
	}
	if len(s.backends) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no backends configured"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Strings(s.names)
	if len(s.names) == 1 {
		s.single = s.backends[s.names[0]]
	}
	return s, nil
}

// Names returns the backend names, sorted.
func (s *Snapshot) Names() []string { return s.names }

// Backend returns the named backend.
func (s *Snapshot) Backend(name string) (*Backend, bool) {
	b, ok := s.backends[name]
	return b, ok
}

// choose selects the backend of a request: the context extension when set
// (an unknown name is an error, never a fallback), else the host, else the
// only configured backend.
func (s *Snapshot) choose(ext, host string) (*Backend, bool) {
	if ext != "" {
		b, ok := s.backends[ext]
		return b, ok
	}
	if len(s.byHost) > 0 && host != "" {
		if b, ok := s.byHost[normalizeHost(host)]; ok {
			return b, true
		}
	}
	return s.single, s.single != nil
}

// normalizeHost lower-cases a host and drops a port.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}
