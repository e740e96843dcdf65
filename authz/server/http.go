package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/proto/envoy"
	"github.com/ccauthz/ccauthz/proto/httpcheck"
)

// Protocols a check can arrive by (the decision log's "mode" field).
const (
	modeGRPC    = "grpc"
	modeEnvoy   = "envoy_http"
	modeNginx   = "nginx"
	modeForward = "forward"
	modeJSON    = "json"
)

// Paths of the HTTP check listener (the Envoy http_service prefix is
// configurable).
const (
	PathNginx   = "/v1/auth/nginx"
	PathForward = "/v1/auth/forward"
	PathJSON    = "/v1/check"
)

// HTTPOptions tune the HTTP check listener.
type HTTPOptions struct {
	// EnvoyPathPrefix is the path_prefix of Envoy's http_service: checks
	// arrive at prefix + original path. Default /ext_authz.
	EnvoyPathPrefix string
	// MaxHeaderBytes bounds a check request's header block. Default 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a POST /v1/check body. Default 64 KiB.
	MaxBodyBytes int64
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request,
	// writing its answer and an idle keep-alive connection. Defaults 5s,
	// 5s (at least the check timeout plus 1s), 60s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

func (o *HTTPOptions) defaults(checkTimeout time.Duration) {
	if o.EnvoyPathPrefix == "" {
		o.EnvoyPathPrefix = "/ext_authz"
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	// The answer must be writable after a check that used its whole budget.
	if min := checkTimeout + time.Second; o.WriteTimeout < min {
		o.WriteTimeout = min
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
}

func (o *HTTPOptions) validate() error {
	return httpcheck.ValidateEnvoyPathPrefix(o.EnvoyPathPrefix)
}

// httpMode is one HTTP check protocol: how a request is read and how an
// outcome is written. Everything in between is the shared pipeline.
type httpMode struct {
	name  string
	read  func(r *http.Request, dst *envoy.Request) error
	write func(w http.ResponseWriter, o *envoy.Outcome)
	// writeMalformed answers a request the mode could not read; nil: write.
	writeMalformed func(w http.ResponseWriter, o *envoy.Outcome)
}

// HTTPHandler serves the HTTP checks: Envoy http_service under the path
// prefix, nginx auth_request at /v1/auth/nginx, forward-auth at
// /v1/auth/forward and the JSON API at POST /v1/check. Anything else is a
// 404 or 405 with a JSON error.
func (s *Server) HTTPHandler() http.Handler {
	prefix := s.opts.HTTP.EnvoyPathPrefix
	maxRequestBody := int64(s.opts.MaxRequestBodyBytes)
	envoyMode := &httpMode{name: modeEnvoy,
		read: func(r *http.Request, dst *envoy.Request) error {
			return httpcheck.MapEnvoy(r, prefix, maxRequestBody, dst)
		},
		write: func(w http.ResponseWriter, o *envoy.Outcome) { httpcheck.WriteDirect(w, o, true) },
	}
	nginxMode := &httpMode{name: modeNginx, read: httpcheck.MapNginx, write: httpcheck.WriteNginx}
	forwardMode := &httpMode{name: modeForward,
		read: func(r *http.Request, dst *envoy.Request) error {
			return httpcheck.MapForward(r, maxRequestBody, dst)
		},
		write: func(w http.ResponseWriter, o *envoy.Outcome) { httpcheck.WriteDirect(w, o, false) },
	}
	maxBody := s.opts.HTTP.MaxBodyBytes
	jsonMode := &httpMode{name: modeJSON,
		read:           func(r *http.Request, dst *envoy.Request) error { return httpcheck.MapJSON(r, maxBody, dst) },
		write:          httpcheck.WriteJSON,
		writeMalformed: httpcheck.WriteJSONError,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Routed on the raw request target: http.ServeMux would clean the
		// path and redirect, and the Envoy mode's path is the client's.
		path := r.RequestURI
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		switch {
		case path == prefix || strings.HasPrefix(path, prefix+"/"):
			s.serveHTTPCheck(w, r, envoyMode)
		case path == PathNginx:
			s.serveHTTPCheck(w, r, nginxMode)
		case path == PathForward:
			s.serveHTTPCheck(w, r, forwardMode)
		case path == PathJSON:
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", http.MethodPost)
				httpcheck.WriteError(w, http.StatusMethodNotAllowed, "POST /v1/check only")
				return
			}
			s.serveHTTPCheck(w, r, jsonMode)
		default:
			httpcheck.WriteError(w, http.StatusNotFound, "no check endpoint at this path; see docs/http-checks.md")
		}
	})
}

// serveHTTPCheck runs one HTTP check through the shared pipeline.
func (s *Server) serveHTTPCheck(w http.ResponseWriter, r *http.Request, m *httpMode) {
	reserveStack()
	start := s.deps.Now()
	c := &checkState{mode: m.name}
	written := false
	defer func() {
		if p := recover(); p != nil {
			out := s.recovered(p)
			if !written {
				m.write(w, out)
			}
		}
	}()
	err := m.read(r, &c.req)
	if err == nil {
		err = s.canonicalPath(c)
	}
	if err != nil {
		c.decision = badRequestDecision(err)
		s.settle(c)
		// Counted and logged before the answer is written: a panic there
		// can still be answered (internal_error) instead of the outcome.
		s.account(c, start)
		written = true
		if m.writeMalformed != nil {
			m.writeMalformed(w, &c.out)
		} else {
			m.write(w, &c.out)
		}
		return
	}
	s.decideAdmitted(r.Context(), c)
	s.settle(c)
	s.account(c, start)
	written = true
	m.write(w, &c.out)
}
