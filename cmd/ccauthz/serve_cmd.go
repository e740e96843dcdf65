package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/server"
	"github.com/ccauthz/ccauthz/authz/server/assembly"
	"github.com/ccauthz/ccauthz/catalog"
)

const serveUsage = `usage: ccauthz serve [--config FILE] [--state-dir DIR] [--grpc ADDR] [--admin ADDR] [--http ADDR]

Serve Envoy ext_authz checks (gRPC), the HTTP checks (Envoy http_service,
nginx auth_request, forward-auth, POST /v1/check) and the admin endpoints.

  --config FILE    the server configuration (docs/configuration.md lists
                   every field). Without it ccauthz serves the embedded
                   default: the example catalog and AI gateway manifest on
                   127.0.0.1:9191 / 127.0.0.1:8181 / 127.0.0.1:9192 with a
                   dev issuer whose key lives in the state directory, and
                   prints grpcurl and curl commands that show an allow and a
                   deny.
  --state-dir DIR  where generated state (the dev issuer's key) is kept;
                   overrides state_dir (default .state).
  --grpc ADDR      gRPC listen address; overrides listeners.grpc.
  --admin ADDR     admin HTTP listen address; overrides listeners.admin.
  --http ADDR      HTTP check listen address; overrides listeners.http
                   ("" turns it off).

Signals: SIGHUP reloads the catalog, manifests, extra Rego and TLS files (as
a file change does); SIGTERM or SIGINT reports NOT_SERVING, keeps answering
checks for drain_delay, then drains and stops.
`

// Dev defaults: the instance the example tokens are minted for.
const (
	devInstanceID = "00000000-0000-4000-8000-00000000ca11"
	devRealm      = "self-managed"
	devHost       = "cloud.gitlab.com"
	devTokenTTL   = time.Hour
)

func runServe(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("ccauthz serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), serveUsage) }
	configPath := fs.String("config", "", "configuration file")
	stateDir := fs.String("state-dir", "", "state directory")
	grpcAddr := fs.String("grpc", "", "gRPC listen address")
	adminAddr := fs.String("admin", "", "admin HTTP listen address")
	var httpAddr *string
	fs.Func("http", "HTTP check listen address", func(v string) error { httpAddr = &v; return nil })
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "ccauthz serve: unexpected argument %q\n\n%s", fs.Arg(0), serveUsage)
		return exitUsage
	}

	var cfg *config.Config
	var dev *devissuer.Issuer
	if *configPath != "" {
		c, err := config.Load(*configPath)
		if err == nil {
			// Missing inputs are named first, positioned, before any
			// issuer's keys are fetched.
			err = c.CheckInputs()
		}
		if err != nil {
			printServeConfigError(e.stderr, err)
			return exitInvalid
		}
		cfg = c
		if *stateDir != "" {
			cfg.StateDir = *stateDir
		}
	} else {
		dir := config.DefaultStateDir
		if *stateDir != "" {
			dir = *stateDir
		}
		is, err := devissuer.Ensure(dir)
		if err != nil {
			fmt.Fprintf(e.stderr, "ccauthz serve: %v\n", err)
			return exitInvalid
		}
		dev = is
		cfg = serveDefaultConfig(dir, is)
	}

	if *grpcAddr != "" {
		cfg.Listeners.GRPC = *grpcAddr
	}
	if *adminAddr != "" {
		cfg.Listeners.Admin = *adminAddr
	}
	if httpAddr != nil {
		cfg.Listeners.HTTP = *httpAddr
	}

	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Logging.Level))
	logger := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	applyMemoryLimit(e, logger)

	// The verifier's key refreshers outlive the signal context: they must
	// keep working while in-flight checks drain.
	keysCtx, stopKeys := context.WithCancel(context.Background())
	defer stopKeys()
	// The watcher's baseline is taken before the build reads the files, so a
	// change that lands while ccauthz starts is reloaded, not missed.
	watchSince := server.Fingerprint(cfg.WatchedPaths())
	a, err := assembly.New(keysCtx, cfg, assembly.Deps{Logger: logger, Now: e.now, Build: serveBuildInfo()})
	if err != nil {
		// Build errors list one problem per line (every backend, every
		// file:line:col); keep them one per line under one heading.
		fmt.Fprintf(e.stderr, "ccauthz serve: cannot start:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitInvalid
	}
	defer a.Close()

	listenerTLS, tlsSources, err := assembly.TLS(cfg.TLS)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz serve: cannot start:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitInvalid
	}

	grpcLis, err := net.Listen("tcp", cfg.Listeners.GRPC)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz serve: gRPC listener: %v\n", err)
		return exitInvalid
	}
	adminLis, err := net.Listen("tcp", cfg.Listeners.Admin)
	if err != nil {
		grpcLis.Close()
		fmt.Fprintf(e.stderr, "ccauthz serve: admin listener: %v\n", err)
		return exitInvalid
	}

	var httpLis net.Listener
	if cfg.Listeners.HTTP != "" {
		httpLis, err = net.Listen("tcp", cfg.Listeners.HTTP)
		if err != nil {
			grpcLis.Close()
			adminLis.Close()
			fmt.Fprintf(e.stderr, "ccauthz serve: HTTP check listener: %v\n", err)
			return exitInvalid
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.Server.Reload(ctx, "SIGHUP")
				a.Server.ReloadTLS(tlsSources)
			}
		}
	}()
	if cfg.Watch.Interval > 0 {
		go a.Server.WatchSince(ctx, cfg.WatchedPaths(), watchSince, cfg.Watch.Interval, cfg.Watch.Debounce)
		go a.Server.WatchTLS(ctx, tlsSources, cfg.Watch.Interval, cfg.Watch.Debounce)
	}
	if dev != nil {
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = a.Verifier.WaitReady(waitCtx)
		cancel()
		checkAddr := ""
		if httpLis != nil {
			checkAddr = httpLis.Addr().String()
		}
		if err := printDevCommands(e.stdout, dev, grpcLis.Addr().String(), adminLis.Addr().String(), checkAddr, e.now()); err != nil {
			fmt.Fprintf(e.stderr, "ccauthz serve: %v\n", err)
		}
	}
	if err := a.Server.Serve(ctx, server.Listeners{GRPC: grpcLis, Admin: adminLis, HTTP: httpLis, TLS: listenerTLS}); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz serve: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

// printServeConfigError prints a config's problems one per line.
func printServeConfigError(w io.Writer, err error) {
	var ve *catalog.ValidationError
	if errors.As(err, &ve) {
		fmt.Fprintf(w, "ccauthz serve: invalid configuration (%s):\n%s\n", catPlural(len(ve.Problems), "problem"), ve.Error())
		return
	}
	fmt.Fprintf(w, "ccauthz serve: %v\n", err)
}

// serveDefaultConfig is the embedded default: the example catalog, the AI gateway
// example manifest and the dev issuer, on loopback, logging every decision.
func serveDefaultConfig(stateDir string, dev *devissuer.Issuer) *config.Config {
	cfg := config.Default()
	cfg.Catalog = config.EmbeddedPrefix + "example"
	cfg.Backends = []config.Backend{{
		Name: "ai_gateway", Manifest: config.EmbeddedPrefix + "ai_gateway", Hosts: []string{devHost},
	}}
	cfg.Issuers = append(cfg.Issuers, dev.IssuerConfig())
	cfg.Logging.AllowSampleRate = 1
	// One node, nothing else to run: the manifest's limits are enforced
	// by the embedded rate limiter.
	cfg.RateLimit.Local = true
	// The printed grpcurl commands find the services by reflection.
	cfg.GRPCServer.Reflection = true
	cfg.StateDir = stateDir
	return &cfg
}

// printDevCommands prints ready-to-paste grpcurl commands: one allowed
// check and one denied check, each with a freshly minted dev token; and,
// when the HTTP check listener is on (httpAddr not ""), the same two checks
// with curl.
func printDevCommands(w io.Writer, dev *devissuer.Issuer, grpcAddr, adminAddr, httpAddr string, now time.Time) error {
	tok, err := dev.Mint(devInstanceID, devRealm, []string{"complete_code"}, []string{"gitlab-ai-gateway"}, now, devTokenTTL)
	if err != nil {
		return err
	}
	allow, err := devCheckRequest("/v2/code/completions", tok)
	if err != nil {
		return err
	}
	deny, err := devCheckRequest("/v2/code/generations", tok)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, `ccauthz is serving the embedded default on %s (gRPC) and http://%s (admin):
  the example catalog, the AI gateway manifest, and a dev issuer (%s)
  whose key and JWKS are kept in %s.

The token below is an instance token for %s with scope complete_code,
valid for %s (run 'make run' again for a fresh one). Paste this line into
the shell you run the docs' curl examples from (docs/http-checks.md):

export TOKEN=%s

Install grpcurl once with: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4

# Allowed: code completions need complete_code, which the token has.
grpcurl -plaintext -d '%s' %s envoy.service.auth.v3.Authorization/Check

# Denied (403 insufficient_scope): code generations need generate_code, which it lacks.
grpcurl -plaintext -d '%s' %s envoy.service.auth.v3.Authorization/Check

# Health, readiness and metrics:
grpcurl -plaintext %s grpc.health.v1.Health/Check
curl -s http://%s/readyz
curl -s http://%s/metrics | grep '^ccauthz_checks_total'

# The unit-primitive directory (every unit primitive, add-on and backend, the
# routes that require each, a grant calculator), live in a browser:
#   http://%s%s
`, grpcAddr, adminAddr, devissuer.IssuerURL, filepath.Dir(dev.JWKSFile), devInstanceID, devTokenTTL, tok,
		allow, grpcAddr, deny, grpcAddr, grpcAddr, adminAddr, adminAddr, adminAddr, assembly.DirectoryPath)
	if httpAddr != "" {
		jsonAllow, err := devJSONCheck("/v2/code/completions", tok)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, `
# The same checks over HTTP (docs/http-checks.md). The JSON API answers the
# full decision:
curl -s http://%s/v1/check -d '%s'

# forward-auth (Caddy, Traefik) answers a denial with its real status and body:
curl -si http://%s/v1/auth/forward -H 'X-Forwarded-Method: POST' -H 'X-Forwarded-Uri: /v2/code/generations' -H 'X-Forwarded-Host: %s' -H 'Authorization: Bearer %s' -H 'X-Gitlab-Authentication-Type: oidc' -H 'X-Gitlab-Instance-Id: %s' -H 'X-Gitlab-Realm: %s'
`, httpAddr, jsonAllow, httpAddr, devHost, tok, devInstanceID, devRealm)
	}
	fmt.Fprint(w, "\nDecision logs go to stderr as JSON. Ctrl-C drains and stops.\n")
	return nil
}

// devJSONCheck is the POST /v1/check body for a request from the dev
// instance to path.
func devJSONCheck(path, tok string) (string, error) {
	b, err := json.Marshal(map[string]any{
		"backend": "ai_gateway", "method": "POST", "path": path, "host": devHost,
		"headers": map[string]string{
			"Authorization":                "Bearer " + tok,
			"X-Gitlab-Authentication-Type": "oidc",
			"X-Gitlab-Instance-Id":         devInstanceID,
			"X-Gitlab-Realm":               devRealm,
		},
	})
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(string(b), '\'') {
		return "", errors.New("check request is not shell-quotable")
	}
	return string(b), nil
}

// devCheckRequest is the JSON CheckRequest Envoy would send for a request
// from the dev instance to path.
func devCheckRequest(path, tok string) (string, error) {
	req := map[string]any{"attributes": map[string]any{
		"context_extensions": map[string]string{"backend": "ai_gateway"},
		"request": map[string]any{"http": map[string]any{
			"method": "POST", "path": path, "host": devHost,
			"headers": map[string]string{
				"authorization":                "Bearer " + tok,
				"x-gitlab-authentication-type": "oidc",
				"x-gitlab-instance-id":         devInstanceID,
				"x-gitlab-realm":               devRealm,
				"content-type":                 "application/json",
			},
		}},
	}}
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if strings.ContainsRune(string(b), '\'') {
		return "", errors.New("check request is not shell-quotable")
	}
	return string(b), nil
}

// Set by the Makefile's build (-ldflags -X) from git; empty in a plain
// `go build`, where the toolchain's own VCS stamp is used.
var (
	buildVersion string
	buildCommit  string
)

// serveBuildInfo reads the module version and VCS revision the binary was built
// from, when the toolchain or the Makefile recorded them.
func serveBuildInfo() server.BuildInfo {
	bi := server.BuildInfo{Version: "devel", Revision: "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			bi.Version = v
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				bi.Revision = s.Value
			}
		}
	}
	if buildVersion != "" {
		bi.Version = buildVersion
	}
	if buildCommit != "" {
		bi.Revision = buildCommit
	}
	return bi
}
