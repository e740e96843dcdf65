package config

import (
	"time"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/proto/envoy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

// EmbeddedPrefix marks a catalog or manifest path that names a bundled
// example instead of a file: `embedded:example` is the example catalog,
// `embedded:ai_gateway` / `embedded:duo_workflow` the example manifests.
const EmbeddedPrefix = "embedded:"

// Defaults. They are the values docs/configuration.md lists.
const (
	DefaultGRPCAddress      = "127.0.0.1:9191"
	DefaultAdminAddress     = "127.0.0.1:8181"
	DefaultHTTPAddress      = "127.0.0.1:9192"
	DefaultEnvoyPathPrefix  = "/ext_authz"
	DefaultHTTPMaxHeader    = 64 << 10
	DefaultHTTPMaxBody      = 64 << 10
	DefaultHTTPReadTimeout  = 5 * time.Second
	DefaultHTTPWriteTimeout = 5 * time.Second
	DefaultHTTPIdleTimeout  = 60 * time.Second
	DefaultCheckTimeout     = 2 * time.Second
	DefaultDrainTimeout     = 15 * time.Second
	DefaultWatchInterval    = 2 * time.Second
	DefaultReloadDebounce   = time.Second
	DefaultAllowSampleRate  = 0.01
	DefaultLogLevel         = "info"
	// DefaultMaxDenialsPerSecond bounds the denial lines of the decision
	// log (logging.max_denials_per_second).
	DefaultMaxDenialsPerSecond = 100
	DefaultStateDir            = ".state"
	DefaultTokenCacheSize      = token.DefaultCacheEntries
	DefaultDecisionCacheSz     = 10000
	DefaultTokenCacheMemory    = token.DefaultCacheBytes
	DefaultRequestBodyMax      = envoy.DefaultMaxBodyBytes
	// MaxClockSkew bounds tokens.clock_skew: a larger leeway would keep
	// expired tokens alive for long.
	MaxClockSkew = 5 * time.Minute
)

// Config is the whole `ccauthz serve` configuration. Every field is
// documented where it is declared (the yaml tag is its key) and in the
// server reference in docs/configuration.md; a test keeps the two in step.
type Config struct {
	// inputs are where the file names the catalog and manifests (not
	// configuration: filled by Decode for CheckInputs).
	inputs []inputRef
	// Listeners are the addresses served.
	Listeners Listeners `yaml:"listeners"`
	// Catalog is the unit-primitive catalog: a directory in the
	// gitlab-cloud-connector layout, a legacy access_data.yml, a JSON sync
	// payload, or `embedded:example`. Relative paths are resolved against
	// the config file's directory. Watched and reloaded.
	Catalog string `yaml:"catalog"`
	// Backends are the protected backends (at least one).
	Backends []Backend `yaml:"backends"`
	// Issuers are the trusted token issuers (see docs/tokens.md, issuer
	// reference for their fields).
	Issuers []token.IssuerConfig `yaml:"issuers"`
	// HTTPCheck tunes the HTTP check listener (listeners.http).
	HTTPCheck HTTPCheck `yaml:"http_check"`
	// Caches bounds the in-memory caches.
	Caches Caches `yaml:"caches"`
	// Logging configures the JSON logs.
	Logging Logging `yaml:"logging"`
	// CheckTimeout bounds one check (token verification and policy); past
	// it the check fails closed with 503 deadline_exceeded. Default 2s.
	CheckTimeout time.Duration `yaml:"check_timeout"`
	// DrainTimeout bounds the graceful drain on SIGTERM; checks still in
	// flight then are cut. Default 15s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Watch tunes how the catalog, manifests and extra Rego are watched.
	Watch Watch `yaml:"watch"`
	// DryRun puts every backend in dry-run mode: decisions are computed,
	// logged and reported in metadata, and every request is allowed.
	DryRun bool `yaml:"dry_run"`
	// StateDir holds generated state (the dev issuer's key). Default
	// `.state` under the current directory; created 0700.
	StateDir string `yaml:"state_dir"`
	// RateLimit configures the embedded rate limiter (docs/rate-limits.md "Rate
	// limiting"). Default off; on in the embedded default of `ccauthz serve`.
	RateLimit RateLimit `yaml:"rate_limit"`
	// RequestPath sets the canonical request path choices Envoy also offers
	// (docs/request-path.md); keep them equal to the gateway's.
	RequestPath RequestPath `yaml:"request_path"`
	// API serves ccauthz's own API (ccauthz.v1: CatalogService) on the
	// gRPC listener and as JSON on the admin listener (docs/api.md).
	API API `yaml:"api"`
	// RequestBody bounds the request bodies checks hand to the policy
	// (docs/http-checks.md "Request bodies").
	RequestBody RequestBody `yaml:"request_body"`
	// Tokens tunes token verification beyond the issuers (docs/tokens.md).
	Tokens Tokens `yaml:"tokens"`
	// Overload bounds the checks decided at once (load shedding).
	Overload Overload `yaml:"overload"`
	// Tracing exports OpenTelemetry spans of checks, token verification,
	// policy evaluation and key fetches over OTLP. Off (and free) unless
	// otlp_endpoint is set.
	Tracing Tracing `yaml:"tracing"`

	// TLS configures TLS and mTLS on the listeners (docs/configuration.md
	// "TLS and listener hygiene"). Default: plaintext.
	TLS TLS `yaml:"tls"`
	// GRPCServer tunes the gRPC listener (reflection, streams, keepalive,
	// connection age).
	GRPCServer GRPCServer `yaml:"grpc_server"`
	// AdminServer tunes the admin listener's timeouts.
	AdminServer AdminServer `yaml:"admin_server"`
	// DrainDelay is how long, after SIGTERM, health reports NOT_SERVING
	// (gRPC health and /readyz) while checks are still answered, so load
	// balancers and Envoy health checks move traffic away before the
	// graceful stop (bounded by drain_timeout) begins. Default 0s; the
	// Kubernetes example sets it.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// File is the path the config was read from ("" for the built-in
	// default); not a YAML key.
	File string `yaml:"-"`
}

// Listeners are the served addresses (host:port; port 0 picks a free one).
type Listeners struct {
	// GRPC serves envoy.service.auth.v3.Authorization, gRPC health and
	// reflection. Default 127.0.0.1:9191.
	GRPC string `yaml:"grpc"`
	// Admin serves /healthz, /readyz and /metrics over HTTP. Default
	// 127.0.0.1:8181.
	Admin string `yaml:"admin"`
	// HTTP serves the HTTP checks: Envoy http_service, nginx auth_request,
	// forward-auth and POST /v1/check. Default 127.0.0.1:9192; "" turns it
	// off.
	HTTP string `yaml:"http"`
}

// HTTPCheck tunes the HTTP check listener.
type HTTPCheck struct {
	// EnvoyPathPrefix is the path_prefix Envoy's http_service puts before
	// the original path. Default /ext_authz; must not be under /v1.
	EnvoyPathPrefix string `yaml:"envoy_path_prefix"`
	// MaxHeaderBytes bounds a check request's header block; larger ones are
	// refused with 431. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxBodyBytes bounds a POST /v1/check body; larger ones get 413.
	// Default 65536.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// ReadTimeout bounds reading one request (headers and body). Default 5s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from its headers read to its answer
	// written; raised to check_timeout + 1s if lower. Default 5s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Backend is one protected backend.
type Backend struct {
	// Name selects the backend from Envoy (context_extensions backend) and
	// labels metrics and logs; snake_case, unique.
	Name string `yaml:"name"`
	// Manifest is the backend's service manifest (a YAML file, or
	// `embedded:ai_gateway`). Its jwt_aud (from the catalog) is the audience
	// tokens must carry. Watched and reloaded.
	Manifest string `yaml:"manifest"`
	// ExtraRego is an optional directory of extra Rego modules (package
	// ccauthz.extra) that may only further restrict. Watched and reloaded.
	ExtraRego string `yaml:"extra_rego"`
	// Issuers names the issuers whose tokens this backend accepts; empty
	// means every configured issuer.
	Issuers []string `yaml:"issuers"`
	// Hosts select this backend by request host (port ignored) when Envoy
	// sends no backend context extension.
	Hosts []string `yaml:"hosts"`
	// DryRun puts only this backend in dry-run mode.
	DryRun bool `yaml:"dry_run"`
	// ExtraRegoBuiltins lets this backend's extra Rego call the named
	// builtins that are otherwise refused: the network and
	// non-deterministic ones (http.send, net.lookup_ip_addr, opa.runtime,
	// rand.intn, time.now_ns, uuid.rfc4122, …; docs/policy.md lists them).
	ExtraRegoBuiltins []string `yaml:"extra_rego_builtins"`
}

// Caches bounds the in-memory caches.
type Caches struct {
	// Tokens is the verified-token cache size in entries (0: default
	// 100000; -1 disables it).
	Tokens int `yaml:"tokens"`
	// TokenBytes bounds the verified-token cache's estimated memory in
	// bytes. Default 16 MiB.
	TokenBytes int `yaml:"token_bytes"`
	// Decisions is each backend's decision cache size in entries (0:
	// default 10000; -1 disables it).
	Decisions int `yaml:"decisions"`
}

// Logging configures the JSON logs on stderr.
type Logging struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// AllowSampleRate is the fraction (0..1) of allowed checks written to
	// the decision log; denials are always written. Default 0.01.
	AllowSampleRate float64 `yaml:"allow_sample_rate"`
	// MaxDenialsPerSecond bounds the denial (and fault) lines written to
	// the decision log each second: a flood of denials (an attacker's
	// garbage tokens) must not turn into a flood of JSON lines that costs
	// more CPU and disk than the checks. Lines past it are counted
	// (ccauthz_decision_log_dropped_total) and summed up in one "decision
	// log lines suppressed" line a second. Default 100; 0 is the default,
	// -1 writes every denial.
	MaxDenialsPerSecond int `yaml:"max_denials_per_second"`
}

// Watch tunes file watching.
type Watch struct {
	// Interval is how often watched files are polled. Default 2s; 0 is
	// the default, a negative value turns watching off (SIGHUP still
	// reloads).
	Interval time.Duration `yaml:"interval"`
	// Debounce is how long files must stay unchanged after a change before
	// the reload runs. Default 1s.
	Debounce time.Duration `yaml:"debounce"`
}

// RateLimit configures the embedded, single-node rate limiter: the
// manifests' per_instance, per_user and auth_failures limits enforced inside
// ccauthz with token buckets (429 rate_limited with Retry-After).
type RateLimit struct {
	// Local turns the embedded limiter on. Default false.
	Local bool `yaml:"local"`
	// MaxBuckets bounds the limiter's token buckets, and so its memory.
	// 0 is the default, 100000.
	MaxBuckets int `yaml:"max_buckets"`
}

// RequestPath are the canonical path choices (proto/requestpath) that
// Envoy's HTTP connection manager also makes; the defaults are what the
// shipped deploy/envoy*.yaml set.
type RequestPath struct {
	// MergeSlashes collapses "//" into "/" before judging the path (Envoy
	// merge_slashes). Default true.
	MergeSlashes bool `yaml:"merge_slashes"`
	// EscapedSlashes is what %2F and %5C in a path do: reject (400
	// bad_request; Envoy REJECT_REQUEST), keep (data inside a segment;
	// KEEP_UNCHANGED) or unescape (%2F becomes a separator;
	// UNESCAPE_AND_FORWARD or UNESCAPE_AND_REDIRECT). Default reject.
	EscapedSlashes string `yaml:"escaped_slashes"`
}

// Options returns the requestpath options the server applies.
func (r RequestPath) Options() requestpath.Options {
	return requestpath.Options{MergeSlashes: r.MergeSlashes, EscapedSlashes: requestpath.EscapedSlashes(r.EscapedSlashes)}
}

// API configures ccauthz's own API (proto/ccauthz/v1).
type API struct {
	// Serve is auto, on or off. auto (the default) serves the API on each
	// listener (gRPC, admin) that listens on loopback only; on serves it on
	// both wherever they listen; off serves it nowhere.
	Serve string `yaml:"serve"`
}

// API serve modes.
const (
	APIServeAuto = "auto"
	APIServeOn   = "on"
	APIServeOff  = "off"
)

// RequestBody bounds the request bodies body rules read.
type RequestBody struct {
	// MaxBytes is the largest body a check gives the policy: Envoy's
	// with_request_body, the forwarded body of the HTTP modes and the JSON
	// API's body. A larger one (or one whose Content-Length says so) is
	// too_large and never decoded. Keep it equal to max_request_bytes in
	// Envoy's with_request_body. Default 1048576 (1 MiB).
	MaxBytes int `yaml:"max_bytes"`
}

// Tokens tunes token verification.
type Tokens struct {
	// ClockSkew is the leeway on exp and nbf (iat is never compared with
	// the clock, as at the AI gateway). Default 0s, as the gateway; at most
	// 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// Tracing configures OpenTelemetry trace export (docs/configuration.md,
// "Tracing").
type Tracing struct {
	// OTLPEndpoint is the collector's URL, e.g. http://otel-collector:4317
	// (gRPC) or http://otel-collector:4318 (HTTP, spans POSTed to
	// /v1/traces). http:// sends in plaintext, https:// over TLS. Empty (the
	// default) turns tracing off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// OTLPProtocol is grpc (default) or http (OTLP/HTTP protobuf).
	OTLPProtocol string `yaml:"otlp_protocol"`
	// SampleRatio is the share of new traces sampled (0..1, default 1). A
	// check whose caller sent a sampled or unsampled trace context follows
	// the caller's choice.
	SampleRatio float64 `yaml:"sample_ratio"`
}
