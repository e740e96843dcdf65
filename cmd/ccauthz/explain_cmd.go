package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ccauthz/ccauthz/authz/api"
	"github.com/ccauthz/ccauthz/authz/config"
	"github.com/ccauthz/ccauthz/authz/devissuer"
	"github.com/ccauthz/ccauthz/authz/server/assembly"
	ccauthzv1 "github.com/ccauthz/ccauthz/proto/ccauthz/v1"
)

const explainUsage = `usage: ccauthz explain [--server ADDR | --config FILE] [request flags] [--format text|json]

Shows what ccauthz would decide for one request, and why: the decision and
a trace of each check (backend, canonical path, token, policy). Nothing is
enforced, rate limited, counted or logged. Token values are shown only as
their sha256 prefix and jti.

Where:
  --server ADDR    ask a running server's DecisionService over gRPC (plaintext)
  --config FILE    build the server from FILE in this process, no listeners;
                   without --server and --config: the defaults of 'ccauthz serve'
                   (bundled example catalog, AI gateway manifest, dev issuer)
  --state-dir DIR  the dev issuer's state directory for the defaults

The request (flags, or --request FILE.json: an ExplainRequest in protojson):
  --method M       HTTP method (default GET)
  --path P         request path, query included
  --host H         Host / :authority
  --backend NAME   backend service (default: chosen by host)
  -H 'Name: value' a request header (repeatable; Authorization carries the token)
  --body FILE      the request body

Exit status: 0 on any decision (allow or deny), 1 on bad input or an
unreachable server, 2 on usage errors.
`

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func runExplain(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), explainUsage) }
	serverAddr := fs.String("server", "", "")
	configPath := fs.String("config", "", "")
	stateDir := fs.String("state-dir", "", "")
	requestFile := fs.String("request", "", "")
	method := fs.String("method", "", "")
	path := fs.String("path", "", "")
	host := fs.String("host", "", "")
	backend := fs.String("backend", "", "")
	bodyFile := fs.String("body", "", "")
	format := fs.String("format", "text", "")
	var headers headerFlags
	fs.Var(&headers, "H", "")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "ccauthz explain: "+format+"\n\n%s", append(a, explainUsage)...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *serverAddr != "" && *configPath != "" {
		return usageErr("--server and --config are exclusive")
	}
	if *format != "text" && *format != "json" {
		return usageErr("--format is text or json, not %q", *format)
	}
	fromFlags := *method != "" || *path != "" || *host != "" || *backend != "" || *bodyFile != "" || len(headers) > 0
	if *requestFile != "" && fromFlags {
		return usageErr("--request and the request flags are exclusive")
	}
	if *requestFile == "" && *path == "" {
		return usageErr("a request needs --path (or --request FILE.json)")
	}

	req := &ccauthzv1.ExplainRequest{Method: *method, Path: *path, Host: *host, Backend: *backend}
	if *requestFile != "" {
		b, err := os.ReadFile(*requestFile)
		if err != nil {
			fmt.Fprintf(e.stderr, "ccauthz explain: %v\n", err)
			return exitInvalid
		}
		if err := protojson.Unmarshal(b, req); err != nil {
			fmt.Fprintf(e.stderr, "ccauthz explain: %s: %v\n", *requestFile, err)
			return exitInvalid
		}
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return usageErr("-H %q: want 'Name: value'", h)
		}
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		k := strings.ToLower(strings.TrimSpace(name))
		if old, dup := req.Headers[k]; dup {
			req.Headers[k] = old + "," + strings.TrimSpace(value)
		} else {
			req.Headers[k] = strings.TrimSpace(value)
		}
	}
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintf(e.stderr, "ccauthz explain: --body: %v\n", err)
			return exitInvalid
		}
		req.Body = b
	}

	var (
		resp *ccauthzv1.ExplainResponse
		err  error
	)
	if *serverAddr != "" {
		resp, err = explainRemote(ctx, *serverAddr, req)
	} else {
		resp, err = explainOffline(ctx, e, *configPath, *stateDir, req)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz explain: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitInvalid
	}
	if *format == "json" {
		out, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(resp)
		if err != nil {
			fmt.Fprintf(e.stderr, "ccauthz explain: %v\n", err)
			return exitInvalid
		}
		fmt.Fprintln(e.stdout, string(out))
		return exitOK
	}
	printExplanation(e.stdout, resp)
	return exitOK
}

// explainRemote asks a running server over gRPC, bounded in time.
func explainRemote(ctx context.Context, addr string, req *ccauthzv1.ExplainRequest) (*ccauthzv1.ExplainResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return ccauthzv1.NewDecisionServiceClient(conn).Explain(ctx, req)
}

// explainOffline builds the server in process (no listeners) and explains
// with it.
func explainOffline(ctx context.Context, e *env, configPath, stateDir string, req *ccauthzv1.ExplainRequest) (*ccauthzv1.ExplainResponse, error) {
	var cfg *config.Config
	if configPath != "" {
		c, err := config.Load(configPath)
		if err == nil {
			err = c.CheckInputs()
		}
		if err != nil {
			return nil, err
		}
		cfg = c
		if stateDir != "" {
			cfg.StateDir = stateDir
		}
	} else {
		dir := config.DefaultStateDir
		if stateDir != "" {
			dir = stateDir
		}
		is, err := devissuer.Ensure(dir)
		if err != nil {
			return nil, err
		}
		cfg = serveDefaultConfig(dir, is)
	}
	// Only errors: the decision is the output, not the server's log.
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := assembly.New(ctx, cfg, assembly.Deps{Logger: logger, Now: e.now, Build: serveBuildInfo()})
	if err != nil {
		return nil, fmt.Errorf("cannot build the server:\n%w", err)
	}
	defer a.Close()
	// Keys that cannot be fetched in time answer keys_unavailable, as the
	// server would: that is a decision, not an error.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = a.Verifier.WaitReady(waitCtx)
	cancel()
	svc := api.NewDecisionService(func() api.Explainer { return a.Server.Explain })
	resp, err := svc.Explain(ctx, req)
	if err != nil {
		return nil, errors.New("explain: " + err.Error())
	}
	return resp, nil
}

// printExplanation writes the human-readable form.
func printExplanation(w io.Writer, r *ccauthzv1.ExplainResponse) {
	d := r.GetDecision()
	verdict := "DENY"
	if d.GetAllow() {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "decision: %s %d %s\n", verdict, d.GetStatus(), d.GetReason())
	for _, kv := range [][2]string{{"backend", d.GetBackend()}, {"path", d.GetPath()}, {"route", d.GetRoute()},
		{"unit primitives", strings.Join(d.GetUnitPrimitives(), " ")}, {"body", d.GetBody()}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "  %s: %s\n", kv[0], kv[1])
		}
	}
	for _, hs := range []struct {
		name string
		m    map[string]string
	}{{"response header", d.GetResponseHeaders()}, {"upstream header", d.GetUpstreamHeaders()}} {
		for _, k := range slices.Sorted(maps.Keys(hs.m)) {
			fmt.Fprintf(w, "  %s: %s: %s\n", hs.name, k, hs.m[k])
		}
	}
	fmt.Fprintln(w, "trace:")
	for _, s := range r.GetTrace() {
		outcome := strings.ToLower(strings.TrimPrefix(s.GetOutcome().String(), "OUTCOME_"))
		fmt.Fprintf(w, "  %-4s  %-18s %s\n", outcome, s.GetName(), s.GetDetail())
	}
}
