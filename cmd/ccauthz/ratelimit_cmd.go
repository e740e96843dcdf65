package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ccauthz/ccauthz/authz/ratelimit"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

const ratelimitUsage = `usage: ccauthz ratelimit <subcommand> [arguments]

subcommands:
  config          write the envoyproxy/ratelimit configuration (YAML) that
                  enforces the manifests' per_instance and per_user limits
                    --manifest FILE|NAME [--manifest ...] [--catalog PATH]
                    [--domain ccauthz] [--out FILE]
  envoy-actions   write the Envoy route rate_limits (YAML) that build the
                  matching descriptors from ccauthz's dynamic metadata
                    [--out FILE]

Without --catalog the bundled example catalog is used. --manifest takes a
manifest file or the name of a bundled example (%s); repeat it
for every backend served by the same envoyproxy/ratelimit domain. Output goes
to stdout unless --out names a file. The Envoy rate-limit filter's domain must
equal --domain.
Exit codes: 0 ok, 1 invalid catalog or manifest, 2 usage.
`

// runRatelimit implements `ccauthz ratelimit`.
func runRatelimit(_ context.Context, e *env, args []string) int {
	usage := fmt.Sprintf(ratelimitUsage, strings.Join(manifest.ExampleNames(), ", "))
	return subcommands(e, "ratelimit", usage, args, map[string]func([]string) int{
		"config":        func(a []string) int { return ratelimitConfig(e, a, usage) },
		"envoy-actions": func(a []string) int { return ratelimitActions(e, a, usage) },
	})
}

// ratelimitList is a repeatable string flag.
type ratelimitList []string

func (s *ratelimitList) String() string     { return strings.Join(*s, ",") }
func (s *ratelimitList) Set(v string) error { *s = append(*s, v); return nil }

func ratelimitConfig(e *env, args []string, usage string) int {
	fs := flag.NewFlagSet("ccauthz ratelimit config", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	var manifests ratelimitList
	fs.Var(&manifests, "manifest", "service manifest file or bundled example name (repeatable)")
	catalogPath := fs.String("catalog", "", "catalog path (default: the bundled example catalog)")
	domain := fs.String("domain", ratelimit.DefaultDomain, "envoyproxy/ratelimit domain")
	out := fs.String("out", "", "output file (default stdout)")
	if code, done := ratelimitFlags(fs, args, e, usage); done {
		return code
	}
	if len(manifests) == 0 {
		fmt.Fprintf(e.stderr, "ccauthz ratelimit config: --manifest is required\n\n%s", usage)
		return exitUsage
	}
	cat := catalog.Example()
	if *catalogPath != "" {
		c, err := catalog.Load(*catalogPath)
		if err != nil {
			printProblems(e.stderr, err)
			return exitInvalid
		}
		cat = c
	}
	var plans []*ratelimit.Plan
	failed := false
	for _, arg := range manifests {
		m, err := loadManifest(arg)
		if err == nil {
			m, err = m.Bind(cat)
		}
		var p *ratelimit.Plan
		if err == nil {
			p, err = ratelimit.NewPlan("", m)
		}
		if err != nil {
			printProblems(e.stderr, err)
			failed = true
			continue
		}
		plans = append(plans, p)
	}
	if failed {
		return exitInvalid
	}
	data, err := ratelimit.GenerateConfig(*domain, plans)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	return ratelimitWrite(e, *out, data)
}

func ratelimitActions(e *env, args []string, usage string) int {
	fs := flag.NewFlagSet("ccauthz ratelimit envoy-actions", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	out := fs.String("out", "", "output file (default stdout)")
	if code, done := ratelimitFlags(fs, args, e, usage); done {
		return code
	}
	data, err := ratelimit.EnvoyActionsYAML()
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	return ratelimitWrite(e, *out, data)
}

// ratelimitFlags parses args; done is true when the command must end with code.
func ratelimitFlags(fs *flag.FlagSet, args []string, e *env, usage string) (code int, done bool) {
	if _, code, done := parseFlags(e, fs, args, false); done {
		return code, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n\n%s", fs.Name(), fs.Arg(0), usage)
		return exitUsage, true
	}
	return 0, false
}

func ratelimitWrite(e *env, path string, data []byte) int {
	if path == "" {
		if _, err := e.stdout.Write(data); err != nil {
			fmt.Fprintln(e.stderr, err)
			return exitInvalid
		}
		return exitOK
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	return exitOK
}
