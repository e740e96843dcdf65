package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
	"github.com/ccauthz/ccauthz/proto/httpcheck"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

var (
	topFields      = []string{"listeners", "catalog", "backends", "issuers", "http_check", "caches", "logging", "check_timeout", "drain_timeout", "watch", "dry_run", "state_dir", "rate_limit", "tls", "grpc_server", "admin_server", "drain_delay", "request_path", "api", "request_body", "tokens", "overload", "tracing"}
	apiFields      = []string{"serve"}
	listenerFields = []string{"grpc", "admin", "http"}
	httpFields     = []string{"envoy_path_prefix", "max_header_bytes", "max_body_bytes", "read_timeout", "write_timeout", "idle_timeout"}
	backendFields  = []string{"name", "manifest", "extra_rego", "issuers", "hosts", "dry_run", "extra_rego_builtins"}
	cacheFields    = []string{"tokens", "token_bytes", "decisions"}
	loggingFields  = []string{"level", "allow_sample_rate", "max_denials_per_second"}
	watchFields    = []string{"interval", "debounce"}
	rateFields     = []string{"local", "max_buckets"}
	pathFields     = []string{"merge_slashes", "escaped_slashes"}
	bodyFields     = []string{"max_bytes"}
	tokensFields   = []string{"clock_skew"}
	tracingFields  = []string{"otlp_endpoint", "otlp_protocol", "sample_ratio"}

	nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Default returns the configuration every field starts from before a file
// is decoded over it. It has no catalog, backends or issuers.
func Default() Config {
	c := Config{
		Listeners: Listeners{GRPC: DefaultGRPCAddress, Admin: DefaultAdminAddress, HTTP: DefaultHTTPAddress},
		HTTPCheck: HTTPCheck{
			EnvoyPathPrefix: DefaultEnvoyPathPrefix, MaxHeaderBytes: DefaultHTTPMaxHeader, MaxBodyBytes: DefaultHTTPMaxBody,
			ReadTimeout: DefaultHTTPReadTimeout, WriteTimeout: DefaultHTTPWriteTimeout, IdleTimeout: DefaultHTTPIdleTimeout,
		},
		Logging:      Logging{Level: DefaultLogLevel, AllowSampleRate: DefaultAllowSampleRate, MaxDenialsPerSecond: DefaultMaxDenialsPerSecond},
		CheckTimeout: DefaultCheckTimeout,
		DrainTimeout: DefaultDrainTimeout,
		Watch:        Watch{Interval: DefaultWatchInterval, Debounce: DefaultReloadDebounce},
		StateDir:     DefaultStateDir,
		RequestPath:  RequestPath{MergeSlashes: true, EscapedSlashes: string(requestpath.EscapedSlashesReject)},
		API:          API{Serve: APIServeAuto},
		RequestBody:  RequestBody{MaxBytes: DefaultRequestBodyMax},
		Tracing:      Tracing{OTLPProtocol: "grpc", SampleRatio: 1},
	}
	defaultListen(&c)
	return c
}

// Load reads and decodes the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Decode(path, data)
}

// Decode decodes, defaults and validates a config document. Every problem
// is returned at once as a *catalog.ValidationError (file:line:col: message,
// sorted). Relative paths are resolved against file's directory.
func Decode(file string, data []byte) (*Config, error) {
	probs := &catalog.Problems{}
	r := catalog.NodeReader{File: file, Problems: probs}
	cfg := Default()
	cfg.File = file
	root := r.Parse(data)
	f := r.Fields(root, "config", topFields, []string{"catalog", "backends", "issuers"})
	if f != nil {
		decode(r, f, &cfg)
		decodeListen(r, f, filepath.Dir(file), &cfg)
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	cfg.resolve(filepath.Dir(file))
	return &cfg, nil
}

func decode(r catalog.NodeReader, f map[string]*yaml.Node, cfg *Config) {
	if lf := r.Fields(f["listeners"], "listeners", listenerFields, nil); lf != nil {
		address(r, lf["grpc"], "grpc", &cfg.Listeners.GRPC)
		address(r, lf["admin"], "admin", &cfg.Listeners.Admin)
		if n := lf["http"]; n != nil && n.Kind == yaml.ScalarNode && n.Value == "" {
			cfg.Listeners.HTTP = "" // off
		} else {
			address(r, n, "http", &cfg.Listeners.HTTP)
		}
	}
	if hf := r.Fields(f["http_check"], "http_check", httpFields, nil); hf != nil {
		decodeHTTPCheck(r, hf, &cfg.HTTPCheck)
	}
	if n := f["catalog"]; n != nil {
		if v, ok := r.String(n, "catalog"); ok {
			if v == "" {
				r.Errorf(n, "field \"catalog\" must not be empty")
			}
			embeddedName(r, n, "catalog", v, []string{"example"})
			cfg.Catalog = v
			cfg.inputs = append(cfg.inputs, inputRef{field: "catalog", pos: r.Pos(n)})
		}
	}
	cfg.Issuers = token.DecodeIssuers(r, f["issuers"])
	issuerNames := map[string]bool{}
	for _, ic := range cfg.Issuers {
		issuerNames[ic.Name] = true
	}
	if n := f["backends"]; n != nil {
		cfg.Backends = decodeBackends(r, n, issuerNames, cfg)
	}
	if cf := r.Fields(f["caches"], "caches", cacheFields, nil); cf != nil {
		cacheSize(r, cf["tokens"], "tokens", &cfg.Caches.Tokens)
		cacheSize(r, cf["decisions"], "decisions", &cfg.Caches.Decisions)
		if v, ok := r.Int(cf["token_bytes"], "token_bytes"); ok {
			if v <= 0 {
				r.Errorf(cf["token_bytes"], "field \"token_bytes\" must be positive, got %d", v)
			}
			cfg.Caches.TokenBytes = v
		}
	}
	if lf := r.Fields(f["logging"], "logging", loggingFields, nil); lf != nil {
		if v, ok := r.String(lf["level"], "level"); ok {
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
				r.Errorf(lf["level"], "field \"level\" must be one of debug, info, warn, error, got %q", v)
			}
			cfg.Logging.Level = v
		}
		if n := lf["allow_sample_rate"]; n != nil {
			v, err := strconv.ParseFloat(n.Value, 64)
			switch {
			case n.Kind != yaml.ScalarNode || err != nil:
				r.Errorf(n, "field \"allow_sample_rate\" must be a number between 0 and 1, got %q", n.Value)
			case v < 0 || v > 1:
				r.Errorf(n, "field \"allow_sample_rate\" must be between 0 and 1, got %v", v)
			default:
				cfg.Logging.AllowSampleRate = v
			}
		}
		if v, ok := r.Int(lf["max_denials_per_second"], "max_denials_per_second"); ok {
			switch {
			case v < -1:
				r.Errorf(lf["max_denials_per_second"], "field \"max_denials_per_second\" must be positive, 0 (the default %d) or -1 (no bound), got %d", DefaultMaxDenialsPerSecond, v)
			case v != 0:
				cfg.Logging.MaxDenialsPerSecond = v
			}
		}
	}
	positiveDuration(r, f["check_timeout"], "check_timeout", &cfg.CheckTimeout)
	positiveDuration(r, f["drain_timeout"], "drain_timeout", &cfg.DrainTimeout)
	if wf := r.Fields(f["watch"], "watch", watchFields, nil); wf != nil {
		if v, ok := r.Duration(wf["interval"], "interval"); ok {
			cfg.Watch.Interval = v
			if v == 0 {
				cfg.Watch.Interval = DefaultWatchInterval
			}
		}
		if v, ok := r.Duration(wf["debounce"], "debounce"); ok {
			if v < 0 {
				r.Errorf(wf["debounce"], "field \"debounce\" must not be negative")
			}
			cfg.Watch.Debounce = v
		}
	}
	if rf := r.Fields(f["rate_limit"], "rate_limit", rateFields, nil); rf != nil {
		if v, ok := r.Bool(rf["local"], "local"); ok {
			cfg.RateLimit.Local = v
		}
		if v, ok := r.Int(rf["max_buckets"], "max_buckets"); ok {
			if v < 0 {
				r.Errorf(rf["max_buckets"], "field \"max_buckets\" must be 0 (default) or a positive bound, got %d", v)
			}
			cfg.RateLimit.MaxBuckets = v
		}
	}
	if pf := r.Fields(f["request_path"], "request_path", pathFields, nil); pf != nil {
		if v, ok := r.Bool(pf["merge_slashes"], "merge_slashes"); ok {
			cfg.RequestPath.MergeSlashes = v
		}
		if v, ok := r.String(pf["escaped_slashes"], "escaped_slashes"); ok {
			if v == "" || requestpath.Options.Validate(requestpath.Options{EscapedSlashes: requestpath.EscapedSlashes(v)}) != nil {
				r.Errorf(pf["escaped_slashes"], "field \"escaped_slashes\" must be one of reject, keep, unescape, got %q", v)
			}
			cfg.RequestPath.EscapedSlashes = v
		}
	}
	if af := r.Fields(f["api"], "api", apiFields, nil); af != nil {
		if v, ok := r.String(af["serve"], "serve"); ok {
			known := []string{APIServeAuto, APIServeOn, APIServeOff}
			if !slices.Contains(known, v) {
				r.Errorf(af["serve"], "field \"serve\" must be auto, on or off, got %q%s", v, catalog.DidYouMean(v, known))
			}
			cfg.API.Serve = v
		}
	}
	if bf := r.Fields(f["request_body"], "request_body", bodyFields, nil); bf != nil {
		if v, ok := r.Int(bf["max_bytes"], "max_bytes"); ok {
			if v < 1024 || v > 16<<20 {
				r.Errorf(bf["max_bytes"], "field \"max_bytes\" must be between 1024 and 16777216 bytes, got %d", v)
			}
			cfg.RequestBody.MaxBytes = v
		}
	}
	if tf := r.Fields(f["tokens"], "tokens", tokensFields, nil); tf != nil {
		if v, ok := r.Duration(tf["clock_skew"], "clock_skew"); ok {
			if v < 0 || v > MaxClockSkew {
				r.Errorf(tf["clock_skew"], "field \"clock_skew\" must be between 0s and %s, got %s", MaxClockSkew, v)
			}
			cfg.Tokens.ClockSkew = v
		}
	}
	decodeOverload(r, f["overload"], &cfg.Overload)
	if tf := r.Fields(f["tracing"], "tracing", tracingFields, nil); tf != nil {
		decodeTracing(r, tf, &cfg.Tracing)
	}
	if v, ok := r.Bool(f["dry_run"], "dry_run"); ok {
		cfg.DryRun = v
	}
	if v, ok := r.String(f["state_dir"], "state_dir"); ok {
		if v == "" {
			r.Errorf(f["state_dir"], "field \"state_dir\" must not be empty")
		}
		cfg.StateDir = v
	}
}

func decodeHTTPCheck(r catalog.NodeReader, f map[string]*yaml.Node, h *HTTPCheck) {
	if v, ok := r.String(f["envoy_path_prefix"], "envoy_path_prefix"); ok {
		if err := httpcheck.ValidateEnvoyPathPrefix(v); err != nil {
			r.Errorf(f["envoy_path_prefix"], "field \"envoy_path_prefix\": %v", err)
		}
		h.EnvoyPathPrefix = v
	}
	for _, lim := range []struct {
		field string
		dst   *int
	}{{"max_header_bytes", &h.MaxHeaderBytes}, {"max_body_bytes", &h.MaxBodyBytes}} {
		if v, ok := r.Int(f[lim.field], lim.field); ok {
			if v < 1024 || v > 16<<20 {
				r.Errorf(f[lim.field], "field %q must be between 1024 and 16777216 bytes, got %d", lim.field, v)
			}
			*lim.dst = v
		}
	}
	positiveDuration(r, f["read_timeout"], "read_timeout", &h.ReadTimeout)
	positiveDuration(r, f["write_timeout"], "write_timeout", &h.WriteTimeout)
	positiveDuration(r, f["idle_timeout"], "idle_timeout", &h.IdleTimeout)
}

func decodeBackends(r catalog.NodeReader, n *yaml.Node, issuerNames map[string]bool, cfg *Config) []Backend {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		r.Errorf(n, "field \"backends\" must be a non-empty list of backends")
		return nil
	}
	var out []Backend
	names := map[string]bool{}
	hosts := map[string]string{}
	for _, item := range n.Content {
		bf := r.Fields(item, "backend", backendFields, []string{"name", "manifest"})
		if bf == nil {
			continue
		}
		var b Backend
		if v, ok := r.String(bf["name"], "name"); ok {
			switch {
			case !nameRe.MatchString(v):
				r.Errorf(bf["name"], "backend name %q must be snake_case (a-z, 0-9, _)", v)
			case names[v]:
				r.Errorf(bf["name"], "backend %q is configured twice", v)
			}
			names[v] = true
			b.Name = v
		}
		if v, ok := r.String(bf["manifest"], "manifest"); ok {
			if v == "" {
				r.Errorf(bf["manifest"], "field \"manifest\" must not be empty")
			}
			embeddedName(r, bf["manifest"], "manifest", v, manifest.ExampleNames())
			b.Manifest = v
			cfg.inputs = append(cfg.inputs, inputRef{field: "manifest", backend: len(out), pos: r.Pos(bf["manifest"])})
		}
		b.ExtraRego, _ = r.String(bf["extra_rego"], "extra_rego")
		b.Issuers = r.Strings(bf["issuers"], "issuers")
		for i, name := range b.Issuers {
			if !issuerNames[name] {
				r.Errorf(bf["issuers"].Content[i], "backend %q names issuer %q, which is not configured", b.Name, name)
			}
		}
		b.Hosts = r.Strings(bf["hosts"], "hosts")
		for i, h := range b.Hosts {
			key := strings.ToLower(h)
			if key == "" || strings.ContainsAny(key, "/ ") {
				r.Errorf(bf["hosts"].Content[i], "host %q is not a host name", h)
			}
			if other, dup := hosts[key]; dup {
				r.Errorf(bf["hosts"].Content[i], "host %q is already claimed by backend %q", h, other)
			}
			hosts[key] = b.Name
		}
		if v, ok := r.Bool(bf["dry_run"], "dry_run"); ok {
			b.DryRun = v
		}
		b.ExtraRegoBuiltins = extraBuiltins(r, bf["extra_rego_builtins"])
		out = append(out, b)
	}
	return out
}

// embeddedName checks that an `embedded:NAME` reference names a bundled
// input, so a misspelling is reported with its position when the config is
// read, before any key is fetched or policy built.
func embeddedName(r catalog.NodeReader, n *yaml.Node, field, v string, known []string) {
	name, ok := strings.CutPrefix(v, EmbeddedPrefix)
	if !ok || slices.Contains(known, name) {
		return
	}
	r.Errorf(n, "field %q: no bundled %s %q%s (bundled: %s)", field, field, name, catalog.DidYouMean(name, known), strings.Join(known, ", "))
}

func address(r catalog.NodeReader, n *yaml.Node, field string, dst *string) {
	v, ok := r.String(n, field)
	if !ok {
		return
	}
	if _, port, err := net.SplitHostPort(v); err != nil {
		r.Errorf(n, "field %q must be host:port, got %q", field, v)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		r.Errorf(n, "field %q has an invalid port %q", field, port)
	}
	*dst = v
}

func cacheSize(r catalog.NodeReader, n *yaml.Node, field string, dst *int) {
	if v, ok := r.Int(n, field); ok {
		if v < -1 {
			r.Errorf(n, "field %q must be -1 (off), 0 (default) or a positive size, got %d", field, v)
		}
		*dst = v
	}
}

func positiveDuration(r catalog.NodeReader, n *yaml.Node, field string, dst *time.Duration) {
	if v, ok := r.Duration(n, field); ok {
		if v <= 0 {
			r.Errorf(n, "field %q must be positive, got %s", field, v)
		}
		*dst = v
	}
}

// resolve makes relative paths absolute against dir (the config file's
// directory), leaving embedded references alone.
func (c *Config) resolve(dir string) {
	abs := func(p string) string {
		if p == "" || strings.HasPrefix(p, EmbeddedPrefix) || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.Catalog = abs(c.Catalog)
	for i := range c.Backends {
		c.Backends[i].Manifest = abs(c.Backends[i].Manifest)
		c.Backends[i].ExtraRego = abs(c.Backends[i].ExtraRego)
	}
	for i := range c.Issuers {
		c.Issuers[i].JWKSFile = abs(c.Issuers[i].JWKSFile)
	}
}

// inputRef is where the config names an input file (the catalog or a
// backend's manifest), for CheckInputs' positioned messages.
type inputRef struct {
	field   string // "catalog" or "manifest"
	backend int    // index into Backends, for "manifest"
	pos     catalog.Position
}

// CheckInputs reports, positioned at the config line that names it, every
// catalog or manifest file that does not exist, with a "did you mean" among
// the files beside it. Serve runs it right after reading the config, so a
// misspelled file name is the first thing said, not an error after the
// issuers' keys loaded. Decode does not: a config may be checked on a machine
// where its paths do not exist (CI checking a Kubernetes ConfigMap).
func (c *Config) CheckInputs() error {
	var ps catalog.Problems
	for _, in := range c.inputs {
		p := c.Catalog
		if in.field == "manifest" {
			if in.backend >= len(c.Backends) {
				continue
			}
			p = c.Backends[in.backend].Manifest
		}
		if p == "" || strings.HasPrefix(p, EmbeddedPrefix) {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			ps.Add(in.pos, "%s %s: %v", in.field, p, err)
			continue
		}
		var siblings []string
		if entries, err := os.ReadDir(filepath.Dir(p)); err == nil {
			for _, e := range entries {
				siblings = append(siblings, e.Name())
			}
		}
		ps.Add(in.pos, "%s %s: no such file or directory%s", in.field, p, catalog.DidYouMean(filepath.Base(p), siblings))
	}
	return ps.Err()
}

// WatchedPaths are the inputs a reload re-reads: the catalog, every
// manifest and every extra Rego directory (embedded inputs excluded).
// Local JWKS files are watched by the token package.
func (c *Config) WatchedPaths() []string {
	var out []string
	add := func(p string) {
		if p != "" && !strings.HasPrefix(p, EmbeddedPrefix) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	add(c.Catalog)
	for _, b := range c.Backends {
		add(b.Manifest)
		add(b.ExtraRego)
		add(promptRegistry(b.Manifest))
	}
	return out
}

// promptRegistry is the prompt-definitions directory a manifest file names
// (prompt_registry, relative to the manifest), or "" when it names none or
// cannot be read: the policy build reports that, positioned.
func promptRegistry(manifestFile string) string {
	if manifestFile == "" || strings.HasPrefix(manifestFile, EmbeddedPrefix) {
		return ""
	}
	data, err := os.ReadFile(manifestFile)
	if err != nil {
		return ""
	}
	var m struct {
		PromptRegistry string `yaml:"prompt_registry"`
	}
	if yaml.Unmarshal(data, &m) != nil || m.PromptRegistry == "" {
		return ""
	}
	if filepath.IsAbs(m.PromptRegistry) {
		return m.PromptRegistry
	}
	return filepath.Join(filepath.Dir(manifestFile), m.PromptRegistry)
}

// decodeTracing reads the tracing section: an OTLP endpoint URL (http or
// https; plaintext only with http), the protocol and the sample ratio.
func decodeTracing(r catalog.NodeReader, tf map[string]*yaml.Node, t *Tracing) {
	if v, ok := r.String(tf["otlp_endpoint"], "otlp_endpoint"); ok {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.Errorf(tf["otlp_endpoint"], "field \"otlp_endpoint\" must be an http:// or https:// URL such as http://otel-collector:4317, got %q", v)
		}
		t.OTLPEndpoint = v
	}
	if v, ok := r.String(tf["otlp_protocol"], "otlp_protocol"); ok {
		if v != "grpc" && v != "http" {
			r.Errorf(tf["otlp_protocol"], "field \"otlp_protocol\" must be grpc or http, got %q", v)
		}
		t.OTLPProtocol = v
	}
	if n := tf["sample_ratio"]; n != nil {
		v, err := strconv.ParseFloat(n.Value, 64)
		switch {
		case n.Kind != yaml.ScalarNode || err != nil:
			r.Errorf(n, "field \"sample_ratio\" must be a number between 0 and 1, got %q", n.Value)
		case v < 0 || v > 1:
			r.Errorf(n, "field \"sample_ratio\" must be between 0 and 1, got %v", v)
		default:
			t.SampleRatio = v
		}
	}
	if n := cmp.Or(tf["otlp_protocol"], tf["sample_ratio"]); t.OTLPEndpoint == "" && n != nil {
		r.Errorf(n, "tracing needs \"otlp_endpoint\": without it nothing is exported")
	}
}
