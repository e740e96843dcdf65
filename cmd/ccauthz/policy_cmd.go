package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy"
	"github.com/ccauthz/ccauthz/policy/manifest"
	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
	"github.com/ccauthz/ccauthz/proto/envoy"
	"github.com/ccauthz/ccauthz/proto/requestpath"
)

const policyUsage = `usage: ccauthz policy <subcommand> [arguments]

subcommands:
  build   generate, compile and write the Rego and its opa test suites
            --manifest FILE|NAME --out DIR [--catalog PATH] [--extra DIR]
  eval    evaluate one request and print the decision as JSON
            --manifest FILE|NAME --input FILE|- [--body FILE] [--catalog PATH] [--extra DIR]
  test    run the opa test suites of a build output directory
            DIR [-v] [--coverage] [--run REGEX]

Without --catalog the bundled example catalog is used. --manifest takes a
manifest file or the name of a bundled example (%s).
build writes DIR/core.rego, DIR/generated.rego, DIR/tests/<route>_test.rego
(and DIR/extra/*.rego with --extra); run them with: ccauthz policy test DIR
` + policyInputHelp + `Exit codes: 0 ok, 1 invalid catalog, manifest, extra module or input, 2 usage,
3 a policy test failed.
`

// policyInputHelp describes the --input document of policy eval.
const policyInputHelp = `The eval input is the policy input document as JSON: the request as the
server maps it (header names lower case) and the token as the verifier
judged it; docs/examples/eval-input.json is a complete one (an allow):
  {"backend": "ai_gateway",
   "request": {"method": "POST", "path": "/v2/code/completions", "host": "cloud.gitlab.com",
               "headers": {"x-gitlab-authentication-type": "oidc", "x-gitlab-realm": "self-managed",
                           "x-gitlab-instance-id": "..."}},
   "token": {"status": "valid", "reason": "ok", "issuer": "dev", "kind": "instance",
             "claims": {"sub": "...", "gitlab_realm": "self-managed", "scopes": ["complete_code"]}}}
token.status is valid, missing, invalid or unavailable; backend defaults to
the manifest's.
The original request's body is given in the input (request.body and
request.body_status) or as the bytes of --body FILE, decoded as serve decodes
a check's body (at most 1 MiB, as request_body.max_bytes); not both.
`

const policyEvalUsage = `usage: ccauthz policy eval --manifest FILE|NAME --input FILE|- [--body FILE] [--catalog PATH] [--extra DIR]

Evaluate one request against the policy built from the catalog and manifest
and print the decision as JSON (the same decision serve enforces).

` + policyInputHelp + `
Flags:
`

const policyBuildUsage = `usage: ccauthz policy build --manifest FILE|NAME --out DIR [--catalog PATH] [--extra DIR]

Generate and compile the Rego for one backend and write it with its opa test
suites to DIR; then run them with: ccauthz policy test DIR

Flags:
`

// runPolicy implements `ccauthz policy`.
func runPolicy(ctx context.Context, e *env, args []string) int {
	usage := fmt.Sprintf(policyUsage, strings.Join(manifest.ExampleNames(), ", "))
	return subcommands(e, "policy", usage, args, map[string]func([]string) int{
		"build": func(a []string) int { return policyBuild(e, a) },
		"eval":  func(a []string) int { return policyEval(ctx, e, a) },
		"test":  func(a []string) int { return policyTest(ctx, e, a) },
	})
}

// policyInputs are the flags build and eval share.
type policyInputs struct {
	catalogPath, manifestArg, extraDir string
}

func (pi *policyInputs) register(fs *flag.FlagSet) {
	fs.StringVar(&pi.catalogPath, "catalog", "", "catalog path (default: the bundled example catalog)")
	fs.StringVar(&pi.manifestArg, "manifest", "", "service manifest file, or a bundled example name")
	fs.StringVar(&pi.extraDir, "extra", "", "directory of extra Rego modules (package ccauthz.extra)")
}

// load reads the catalog and manifest and builds the policy, printing every
// problem to stderr.
func (pi *policyInputs) load(e *env) (*policy.Policy, int) {
	cat := catalog.Example()
	if pi.catalogPath != "" {
		c, err := catalog.Load(pi.catalogPath)
		if err != nil {
			printProblems(e.stderr, err)
			return nil, exitInvalid
		}
		cat = c
	}
	m, err := loadManifest(pi.manifestArg)
	if err != nil {
		printProblems(e.stderr, err)
		return nil, exitInvalid
	}
	p, err := policy.Build(cat, m, policy.BuildOptions{ExtraDir: pi.extraDir})
	if err != nil {
		printProblems(e.stderr, err)
		return nil, exitInvalid
	}
	return p, exitOK
}

// loadManifest reads a manifest file, or a bundled example when arg names
// one and no such file exists.
func loadManifest(arg string) (*manifest.Manifest, error) {
	if _, err := os.Stat(arg); err == nil {
		return manifest.Load(arg)
	}
	if slices.Contains(manifest.ExampleNames(), arg) {
		return manifest.Example(arg)
	}
	return nil, fmt.Errorf("manifest %q: no such file, and not a bundled example%s (bundled: %s)", arg, catalog.DidYouMean(arg, manifest.ExampleNames()), strings.Join(manifest.ExampleNames(), ", "))
}

func printProblems(w io.Writer, err error) {
	var ve *catalog.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintln(w, p.String())
		}
		return
	}
	fmt.Fprintln(w, err)
}

// policyFlagSet is a subcommand's flag set; its usage text is head followed
// by the flag defaults.
func policyFlagSet(e *env, name, head string) *flag.FlagSet {
	fs := flag.NewFlagSet("ccauthz policy "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), head)
		fs.PrintDefaults()
	}
	return fs
}

func policyBuild(e *env, args []string) int {
	fs := policyFlagSet(e, "build", policyBuildUsage)
	var pi policyInputs
	pi.register(fs)
	out := fs.String("out", "", "output directory (created; a previous build there is replaced)")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	if pi.manifestArg == "" || *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "ccauthz policy build: --manifest and --out are required, and no positional arguments")
		fs.Usage()
		return exitUsage
	}
	p, code := pi.load(e)
	if p == nil {
		return code
	}
	files, err := outputFiles(p, pi.extraDir)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	if err := writeOutput(*out, files); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy build: %v\n", err)
		return exitInvalid
	}
	gen := p.Generated()
	fmt.Fprintf(e.stdout, "wrote %d files to %s: backend %s, %d test files, %d test cases, revision %s\n",
		len(files), *out, p.Backend(), len(gen.Tests), len(gen.Cases), p.Revision())
	return exitOK
}

// outputFiles lists what build writes: the core, the generated module, the
// tests, and copies of the extra modules (so `opa test DIR` compiles what
// serve compiles).
func outputFiles(p *policy.Policy, extraDir string) ([]regogen.File, error) {
	files := []regogen.File{{Name: corerego.CoreFile, Content: corerego.Core()}}
	files = append(files, p.Generated().Files()...)
	if extraDir == "" {
		return files, nil
	}
	entries, err := os.ReadDir(extraDir)
	if err != nil {
		return nil, fmt.Errorf("ccauthz policy build: extra modules: %w", err)
	}
	for _, en := range entries {
		if en.IsDir() || !strings.HasSuffix(en.Name(), ".rego") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(extraDir, en.Name()))
		if err != nil {
			return nil, fmt.Errorf("ccauthz policy build: extra modules: %w", err)
		}
		files = append(files, regogen.File{Name: "extra/" + en.Name(), Content: string(b)})
	}
	return files, nil
}

// writeOutput writes files under dir. An existing dir must be empty or hold a
// previous build (generated.rego), whose files are replaced so tests for
// removed routes do not linger.
func writeOutput(dir string, files []regogen.File) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, regogen.ModuleFile)); err != nil {
			return fmt.Errorf("%s is not empty and holds no previous build (%s); refusing to write there", dir, regogen.ModuleFile)
		}
		for _, sub := range []string{regogen.TestDir, "extra"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return err
			}
		}
	}
	for _, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(f.Content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func policyEval(ctx context.Context, e *env, args []string) int {
	fs := policyFlagSet(e, "eval", policyEvalUsage)
	var pi policyInputs
	pi.register(fs)
	inputPath := fs.String("input", "", "policy input JSON file (see docs/examples/eval-input.json), or - for stdin")
	bodyPath := fs.String("body", "", "file with the original request's body (raw bytes, usually JSON)")
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code
	}
	if pi.manifestArg == "" || *inputPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "ccauthz policy eval: --manifest and --input are required, and no positional arguments")
		fs.Usage()
		return exitUsage
	}
	p, code := pi.load(e)
	if p == nil {
		return code
	}
	var data []byte
	var err error
	if *inputPath == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, 1<<20))
	} else {
		data, err = os.ReadFile(*inputPath)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy eval: %v\n", err)
		return exitInvalid
	}
	var body envoy.Body
	if *bodyPath != "" {
		if inputNamesBody(data) {
			fmt.Fprintf(e.stderr, "ccauthz policy eval: %s: request.body (or body_status) and --body both give the body; use one\n", *inputPath)
			return exitInvalid
		}
		if body, err = readBodyFile(*bodyPath); err != nil {
			fmt.Fprintf(e.stderr, "ccauthz policy eval: --body: %v\n", err)
			return exitInvalid
		}
	}
	in, err := policy.ParseInputJSON(data)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy eval: %s: %v\n", *inputPath, err)
		return exitInvalid
	}
	// The path is what a client sent; serve judges its canonical form
	// (docs/request-path.md), and so does eval.
	if in.Path, err = requestpath.Default().Path(in.Path); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy eval: %s: request.path: %v\n", *inputPath, err)
		return exitInvalid
	}
	if body.Present {
		// The same decode a served check's body goes through.
		in.Body = envoy.DecodeBody(body, envoy.DefaultMaxBodyBytes)
	}
	if in.Backend == "" {
		in.Backend = p.Backend()
	}
	d, err := p.Decide(ctx, in)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy eval: %v\n", err)
		return exitInvalid
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy eval: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

// inputNamesBody reports whether an eval input document gives the body
// itself (request.body or request.body_status), which --body would
// contradict. A document that does not parse is left to the input parser.
func inputNamesBody(data []byte) bool {
	var doc struct {
		Request map[string]json.RawMessage `json:"request"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return false
	}
	_, body := doc.Request["body"]
	_, status := doc.Request["body_status"]
	return body || status
}

// readBodyFile reads a --body file, one byte past the body limit so an
// oversized body is reported as too_large to the policy, never truncated.
func readBodyFile(path string) (envoy.Body, error) {
	f, err := os.Open(path)
	if err != nil {
		return envoy.Body{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, envoy.DefaultMaxBodyBytes+1))
	if err != nil {
		return envoy.Body{}, err
	}
	return envoy.Body{Present: true, Data: data, DeclaredLength: -1}, nil
}
