package server

import (
	"fmt"
	"sort"
	"strings"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// AuthorizationService is the gRPC service name of ext_authz, also reported
// by the health service.
const AuthorizationService = "envoy.service.auth.v3.Authorization"

// refreshReadiness re-evaluates every backend (policy built, keys fresh) and
// publishes it to the gRPC health service (one service name per backend, ""
// and the Authorization service for all of them) and the readiness gauge.
func (s *Server) refreshReadiness() {
	snap := s.snap.Load()
	notReady := map[string]string{}
	for _, name := range snap.Names() {
		b := snap.backends[name]
		ready := 1.0
		if b.Ready != nil {
			if err := b.Ready(); err != nil {
				notReady[name] = err.Error()
				ready = 0
			}
		}
		s.metrics.backendUp.WithLabelValues(name).Set(ready)
	}
	s.readyMu.Lock()
	s.notReady = notReady
	s.readyMu.Unlock()
	if s.draining.Load() {
		return // health.Shutdown already pinned everything to NOT_SERVING
	}
	all := healthpb.HealthCheckResponse_SERVING
	for _, name := range snap.Names() {
		st := healthpb.HealthCheckResponse_SERVING
		if _, bad := notReady[name]; bad {
			st = healthpb.HealthCheckResponse_NOT_SERVING
			all = st
		}
		s.health.SetServingStatus(name, st)
	}
	s.health.SetServingStatus("", all)
	s.health.SetServingStatus(AuthorizationService, all)
}

// Ready returns nil when every backend is ready and the server is not
// draining, else an error naming each problem.
func (s *Server) Ready() error {
	if s.draining.Load() {
		return fmt.Errorf("draining")
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if len(s.notReady) == 0 {
		return nil
	}
	lines := make([]string, 0, len(s.notReady))
	for name, why := range s.notReady {
		lines = append(lines, fmt.Sprintf("backend %s: %s", name, why))
	}
	sort.Strings(lines)
	return fmt.Errorf("%s", strings.Join(lines, "; "))
}
