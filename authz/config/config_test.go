package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
)

const good = `
listeners:
  grpc: 127.0.0.1:0
  admin: "[::1]:8181"
  http: 0.0.0.0:9192
http_check:
  envoy_path_prefix: /authz
  max_header_bytes: 8192
  max_body_bytes: 4096
  read_timeout: 1s
  write_timeout: 3s
  idle_timeout: 30s
catalog: catalog/
backends:
  - name: ai_gateway
    manifest: ai_gateway.yaml
    extra_rego: extra
    issuers: [gitlab_com]
    hosts: [cloud.gitlab.com]
  - name: duo_workflow
    manifest: embedded:duo_workflow
    dry_run: true
issuers:
  - name: gitlab_com
    issuer: https://gitlab.com
    jwks_file: keys/jwks.json
caches: {tokens: -1, token_bytes: 1024, decisions: 5}
logging: {level: debug, allow_sample_rate: 0, max_denials_per_second: -1}
check_timeout: 250ms
drain_timeout: 3s
watch: {interval: 500ms, debounce: 0s}
dry_run: true
state_dir: /var/lib/ccauthz
api: {serve: off}
request_body: {max_bytes: 4096}
tokens: {clock_skew: 2s}
overload: {max_in_flight: 16, min_deadline: 5ms, max_queue_wait: 20ms, refuse_streams: true}
`

func TestDecodeGood(t *testing.T) {
	cfg, err := Decode("/etc/ccauthz/config.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listeners: Listeners{GRPC: "127.0.0.1:0", Admin: "[::1]:8181", HTTP: "0.0.0.0:9192"},
		HTTPCheck: HTTPCheck{EnvoyPathPrefix: "/authz", MaxHeaderBytes: 8192, MaxBodyBytes: 4096,
			ReadTimeout: time.Second, WriteTimeout: 3 * time.Second, IdleTimeout: 30 * time.Second},
		Catalog: "/etc/ccauthz/catalog",
		Backends: []Backend{
			{Name: "ai_gateway", Manifest: "/etc/ccauthz/ai_gateway.yaml", ExtraRego: "/etc/ccauthz/extra",
				Issuers: []string{"gitlab_com"}, Hosts: []string{"cloud.gitlab.com"}},
			{Name: "duo_workflow", Manifest: "embedded:duo_workflow", DryRun: true},
		},
		Caches:       Caches{Tokens: -1, TokenBytes: 1024, Decisions: 5},
		Logging:      Logging{Level: "debug", AllowSampleRate: 0, MaxDenialsPerSecond: -1},
		CheckTimeout: 250 * time.Millisecond,
		DrainTimeout: 3 * time.Second,
		Watch:        Watch{Interval: 500 * time.Millisecond, Debounce: 0},
		DryRun:       true,
		StateDir:     "/var/lib/ccauthz",
		RequestPath:  RequestPath{MergeSlashes: true, EscapedSlashes: "reject"},
		API:          API{Serve: APIServeOff},
		RequestBody:  RequestBody{MaxBytes: 4096},
		Tokens:       Tokens{ClockSkew: 2 * time.Second},
		Overload:     Overload{MaxInFlight: 16, MinDeadline: 5 * time.Millisecond, MaxQueueWait: 20 * time.Millisecond, RefuseStreams: true},
		Tracing:      Tracing{OTLPProtocol: "grpc", SampleRatio: 1},
		File:         "/etc/ccauthz/config.yaml",
	}
	d := Default()
	want.TLS, want.GRPCServer, want.AdminServer = d.TLS, d.GRPCServer, d.AdminServer
	issuers := cfg.Issuers
	cfg.Issuers = nil
	inputs := cfg.inputs
	cfg.inputs = nil
	if len(inputs) != 3 {
		t.Errorf("inputs = %+v, want the catalog and two manifests", inputs)
	}
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}
	if len(issuers) != 1 || issuers[0].JWKSFile != "/etc/ccauthz/keys/jwks.json" || issuers[0].Algorithms[0] != "RS256" {
		t.Errorf("issuers = %+v", issuers)
	}
	if got := cfg.WatchedPaths(); !reflect.DeepEqual(got, []string{"/etc/ccauthz/catalog", "/etc/ccauthz/ai_gateway.yaml", "/etc/ccauthz/extra"}) {
		t.Errorf("watched = %v", got)
	}
}

func TestDecodeDefaults(t *testing.T) {
	cfg, err := Decode("c.yaml", []byte(`
catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if cfg.Listeners != d.Listeners || cfg.CheckTimeout != 2*time.Second || cfg.DrainTimeout != 15*time.Second ||
		cfg.Logging != d.Logging || cfg.Watch != d.Watch || cfg.StateDir != ".state" || cfg.Listeners.GRPC != "127.0.0.1:9191" ||
		cfg.Listeners.Admin != "127.0.0.1:8181" || cfg.Logging.AllowSampleRate != 0.01 ||
		cfg.Listeners.HTTP != "127.0.0.1:9192" || cfg.HTTPCheck != d.HTTPCheck || cfg.HTTPCheck.EnvoyPathPrefix != "/ext_authz" ||
		cfg.HTTPCheck.MaxBodyBytes != 65536 || cfg.HTTPCheck.WriteTimeout != 5*time.Second {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// TestDecodeProblems has one bad input per rule and asserts the exact,
// positioned messages: all of them, sorted.
func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"empty", "", []string{"c.yaml:1:1: file is empty"}},
		{"missing required", "dry_run: true\n", []string{
			`c.yaml:1:1: missing required field "backends" in config`,
			`c.yaml:1:1: missing required field "catalog" in config`,
			`c.yaml:1:1: missing required field "issuers" in config`,
		}},
		{"unknown key with hint", base + "dry_runn: true\n", []string{
			`c.yaml:5:1: unknown field "dry_runn" in config (did you mean "dry_run"?)`,
		}},
		{"listener address", base + "listeners: {grpc: localhost, admin: \"h:99999\"}\n", []string{
			`c.yaml:5:19: field "grpc" must be host:port, got "localhost"`,
			`c.yaml:5:37: field "admin" has an invalid port "99999"`,
		}},
		{"sample rate", base + "logging: {allow_sample_rate: 1.5, level: loud}\n", []string{
			`c.yaml:5:30: field "allow_sample_rate" must be between 0 and 1, got 1.5`,
			`c.yaml:5:42: field "level" must be one of debug, info, warn, error, got "loud"`,
		}},
		{"denial log bound", base + "logging: {max_denials_per_second: -5}\n", []string{
			`c.yaml:5:35: field "max_denials_per_second" must be positive, 0 (the default 100) or -1 (no bound), got -5`,
		}},
		{"tracing", base + "tracing: {otlp_endpoint: \"collector:4317\", otlp_protocol: zipkin, sample_ratio: 2}\n", []string{
			`c.yaml:5:26: field "otlp_endpoint" must be an http:// or https:// URL such as http://otel-collector:4317, got "collector:4317"`,
			`c.yaml:5:59: field "otlp_protocol" must be grpc or http, got "zipkin"`,
			`c.yaml:5:81: field "sample_ratio" must be between 0 and 1, got 2`,
		}},
		{"tracing without endpoint", base + "tracing: {sample_ratio: 0.5}\n", []string{
			`c.yaml:5:25: tracing needs "otlp_endpoint": without it nothing is exported`,
		}},
		{"durations", base + "check_timeout: 0s\ndrain_timeout: soon\n", []string{
			`c.yaml:5:16: field "check_timeout" must be positive, got 0s`,
			`c.yaml:6:16: field "drain_timeout" must be a duration such as "30s" or "24h", got "soon"`,
		}},
		{"backends", `catalog: embedded:example
issuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]
backends:
  - {name: AI, manifest: m.yaml, issuers: [nope], hosts: [a.test]}
  - {name: b, manifest: m.yaml, hosts: [A.test]}
  - {name: b, manifest: m.yaml}
  - {name: c}
`, []string{
			`c.yaml:4:12: backend name "AI" must be snake_case (a-z, 0-9, _)`,
			`c.yaml:4:44: backend "AI" names issuer "nope", which is not configured`,
			`c.yaml:5:41: host "A.test" is already claimed by backend "AI"`,
			`c.yaml:6:12: backend "b" is configured twice`,
			`c.yaml:7:5: missing required field "manifest" in backend`,
		}},
		{"http check", base + "listeners: {http: nope}\nhttp_check: {envoy_path_prefix: /v1/authz, max_body_bytes: 10, read_timeout: 0s, idle: 1s}\n", []string{
			`c.yaml:5:19: field "http" must be host:port, got "nope"`,
			`c.yaml:6:33: field "envoy_path_prefix": envoy path prefix "/v1/authz" overlaps the /v1 check endpoints`,
			`c.yaml:6:60: field "max_body_bytes" must be between 1024 and 16777216 bytes, got 10`,
			`c.yaml:6:78: field "read_timeout" must be positive, got 0s`,
			`c.yaml:6:82: unknown field "idle" in http_check`,
		}},
		{"envoy path prefix", base + "http_check: {envoy_path_prefix: /authz/}\n", []string{
			`c.yaml:5:33: field "envoy_path_prefix": envoy path prefix "/authz/" must not end with /`,
		}},
		{"caches", base + "caches: {tokens: -2, token_bytes: 0}\n", []string{
			`c.yaml:5:18: field "tokens" must be -1 (off), 0 (default) or a positive size, got -2`,
			`c.yaml:5:35: field "token_bytes" must be positive, got 0`,
		}},
		{"api", base + "api: {serve: offf}\n", []string{
			`c.yaml:5:14: field "serve" must be auto, on or off, got "offf" (did you mean "off"?)`,
		}},
		{"misspelled bundled names", `catalog: embedded:exmaple
backends:
  - {name: a, manifest: embedded:ai_gatway}
  - {name: b, manifest: embedded:nothing_like_it}
issuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]
`, []string{
			`c.yaml:1:10: field "catalog": no bundled catalog "exmaple" (did you mean "example"?) (bundled: example)`,
			`c.yaml:3:25: field "manifest": no bundled manifest "ai_gatway" (did you mean "ai_gateway"?) (bundled: ai_gateway, duo_workflow)`,
			`c.yaml:4:25: field "manifest": no bundled manifest "nothing_like_it" (bundled: ai_gateway, duo_workflow)`,
		}},
		{"overload", base + "overload: {max_in_flight: -2, min_deadline: 2s, queue: 1}\n", []string{
			`c.yaml:5:27: field "max_in_flight" must be -1 (off), 0 (default) or a positive limit, got -2`,
			`c.yaml:5:45: field "min_deadline" must be between 0s and 1s, got 2s`,
			`c.yaml:5:49: unknown field "queue" in overload`,
		}},
		{"overload queue", base + "overload: {max_queue_wait: 2s, refuse_streams: yes}\n", []string{
			`c.yaml:5:28: field "max_queue_wait" must be between 0s (off) and 1s, got 2s`,
			`c.yaml:5:48: field "refuse_streams" must be true or false, got "yes"`,
		}},
		{"issuers are checked by the token package", `catalog: x
backends: [{name: a, manifest: m}]
issuers: [{name: dev, issuer: https://dev.invalid}]
`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode("c.yaml", []byte(tc.doc))
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *catalog.ValidationError, got %v", err)
			}
			if tc.want == nil { // only that it fails, positioned
				if !strings.HasPrefix(err.Error(), "c.yaml:3:") {
					t.Errorf("issuer problem not positioned: %v", err)
				}
				return
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

const base = `catalog: embedded:example
backends: [{name: ai_gateway, manifest: embedded:ai_gateway}]
issuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]

`

// TestEveryFieldInReference keeps the configuration reference
// (docs/configuration.md) in step with the Config type: every yaml key must
// appear there as `key`.
func TestEveryFieldInReference(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "<!-- section:server -->")
	end := strings.Index(string(readme), "<!-- /section:server -->")
	if start < 0 || end < start {
		t.Fatal("docs/configuration.md has no server section")
	}
	section := string(readme[start:end])
	var missing []string
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, prefix string) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			key := prefix + tag
			if !strings.Contains(section, "`"+key+"`") {
				missing = append(missing, key)
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == reflect.TypeFor[Config]().PkgPath() {
				walk(ft, key+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md lacks these config keys (as `key`): %s", strings.Join(missing, ", "))
	}
}

func TestDecodeHTTPListenerOff(t *testing.T) {
	cfg, err := Decode("c.yaml", []byte(base+"listeners: {http: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners.HTTP != "" || cfg.Listeners.GRPC != DefaultGRPCAddress {
		t.Errorf("listeners = %+v, want the HTTP listener off and the others default", cfg.Listeners)
	}
}

func TestDecodeRateLimit(t *testing.T) {
	cfg, err := Decode("c.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != (RateLimit{}) {
		t.Errorf("rate limiter must default to off, got %+v", cfg.RateLimit)
	}
	cfg, err = Decode("c.yaml", []byte(base+"rate_limit: {local: true, max_buckets: 5000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != (RateLimit{Local: true, MaxBuckets: 5000}) {
		t.Errorf("rate_limit = %+v", cfg.RateLimit)
	}
	_, err = Decode("c.yaml", []byte(base+"rate_limit: {local: yes, max_buckets: -1, buckets: 3}\n"))
	want := []string{
		`c.yaml:5:21: field "local" must be true or false, got "yes"`,
		`c.yaml:5:39: field "max_buckets" must be 0 (default) or a positive bound, got -1`,
		`c.yaml:5:43: unknown field "buckets" in rate_limit`,
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestDecodeRequestPath(t *testing.T) {
	cfg, err := Decode("c.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RequestPath != (RequestPath{MergeSlashes: true, EscapedSlashes: "reject"}) {
		t.Errorf("request_path must default to what deploy/envoy*.yaml do, got %+v", cfg.RequestPath)
	}
	cfg, err = Decode("c.yaml", []byte(base+"request_path: {merge_slashes: false, escaped_slashes: keep}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.RequestPath.Options(); o.MergeSlashes || o.EscapedSlashes != "keep" {
		t.Errorf("request_path options = %+v", o)
	}
	_, err = Decode("c.yaml", []byte(base+"request_path: {merge_slashes: 1, escaped_slashes: redirect, normalize: true}\n"))
	want := []string{
		`c.yaml:5:31: field "merge_slashes" must be true or false, got "1"`,
		`c.yaml:5:51: field "escaped_slashes" must be one of reject, keep, unescape, got "redirect"`,
		`c.yaml:5:61: unknown field "normalize" in request_path`,
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestCheckInputs: a catalog or manifest file that does not exist is reported
// at the config line naming it, with the closest file beside it.
func TestCheckInputs(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ai_gateway.yaml", "catalog.yml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "c.yaml")
	doc := `catalog: catalog.yml
backends:
  - {name: a, manifest: ai_gatway.yaml}
  - {name: b, manifest: embedded:duo_workflow}
  - {name: c, manifest: ai_gateway.yaml}
  - {name: d, manifest: zzz/none.yaml}
issuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]
`
	cfg, err := Decode(file, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckInputs()
	want := []string{
		file + `:3:25: manifest ` + filepath.Join(dir, "ai_gatway.yaml") + `: no such file or directory (did you mean "ai_gateway.yaml"?)`,
		file + `:6:25: manifest ` + filepath.Join(dir, "zzz/none.yaml") + `: no such file or directory`,
	}
	if err == nil {
		t.Fatal("CheckInputs passed with missing manifests")
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := os.WriteFile(filepath.Join(dir, "ai_gatway.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "zzz"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "zzz/none.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckInputs(); err != nil {
		t.Errorf("all inputs exist: %v", err)
	}
}

func TestDecodeRequestBodyAndTokens(t *testing.T) {
	cfg, err := Decode("c.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RequestBody.MaxBytes != 1<<20 || cfg.Tokens.ClockSkew != 0 {
		t.Errorf("defaults: request_body %+v tokens %+v; want 1 MiB and 0s", cfg.RequestBody, cfg.Tokens)
	}
	cfg, err = Decode("c.yaml", []byte(base+"request_body: {max_bytes: 2048}\ntokens: {clock_skew: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RequestBody.MaxBytes != 2048 || cfg.Tokens.ClockSkew != 5*time.Second {
		t.Errorf("got request_body %+v tokens %+v", cfg.RequestBody, cfg.Tokens)
	}
	for doc, want := range map[string]string{
		"request_body: {max_bytes: 10}\n":       `c.yaml:5:27: field "max_bytes" must be between 1024 and 16777216 bytes, got 10`,
		"request_body: {max_bytes: 99999999}\n": `c.yaml:5:27: field "max_bytes" must be between 1024 and 16777216 bytes, got 99999999`,
		"request_body: {max: 1}\n":              `c.yaml:5:16: unknown field "max" in request_body`,
		"tokens: {clock_skew: -1s}\n":           `c.yaml:5:22: field "clock_skew" must be between 0s and 5m0s, got -1s`,
		"tokens: {clock_skew: 1h}\n":            `c.yaml:5:22: field "clock_skew" must be between 0s and 5m0s, got 1h0m0s`,
		"tokens: {clock_skew: soon}\n":          `c.yaml:5:22:`,
		"tokens: {leeway: 1s}\n":                `c.yaml:5:10: unknown field "leeway" in tokens`,
	} {
		_, err := Decode("c.yaml", []byte(base+doc))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err %v, want prefix %q", doc, err, want)
		}
	}
}

// TestWatchedPathsIncludePromptRegistry: a manifest's prompt registry
// (relative to the manifest) is watched like the manifest itself, so adding
// or editing a prompt definition reloads the policy.
func TestWatchedPathsIncludePromptRegistry(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "ai_gateway.yaml")
	if err := os.WriteFile(m, []byte("backend: ai_gateway\nprompt_registry: prompts\nroutes: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Decode(filepath.Join(dir, "c.yaml"), []byte("catalog: embedded:example\nbackends: [{name: ai_gateway, manifest: ai_gateway.yaml}]\nissuers: [{name: dev, issuer: https://dev.invalid, jwks_file: /k.json}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{m, filepath.Join(dir, "prompts")}
	if got := cfg.WatchedPaths(); !reflect.DeepEqual(got, want) {
		t.Errorf("WatchedPaths = %v, want %v", got, want)
	}
}
