// Command ccauthz is the single ccauthz binary: the Envoy external-authorization
// server and the tools around it (catalog, policy, keys, tokens, rate limits).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
	"time"
)

// Exit codes shared by every subcommand (house style: the compiler commands
// and serve agree on them).
const (
	exitOK          = 0
	exitInvalid     = 1 // invalid input: catalog, manifest, config, token
	exitUsage       = 2 // bad flags or arguments
	exitPolicyTests = 3 // a policy test failed
)

// env is what a subcommand may touch: its streams and the clock. Tests run
// subcommands in-process with their own env.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// setMemoryLimit is debug.SetMemoryLimit in the real process (nil in
	// tests, which run serve in-process and must not change the test
	// binary's limit); getenv reads the environment and readFile the
	// cgroup memory limit (nil: none).
	setMemoryLimit func(int64) int64
	getenv         func(string) string
	readFile       func(string) ([]byte, error)
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env, args []string) int
}

func commands() map[string]command {
	return map[string]command{
		"catalog":   {"validate, list and query the unit-primitive catalog", runCatalog},
		"policy":    {"build and evaluate the Rego generated from catalog and manifest", runPolicy},
		"keys":      {"generate signing keys and publish JWKS (self-hosted issuers)", runKeys},
		"token":     {"mint and inspect Cloud Connector tokens", runToken},
		"serve":     {"serve Envoy ext_authz checks", runServe},
		"explain":   {"show what ccauthz would decide for a request, and why", runExplain},
		"ratelimit": {"generate rate-limit configuration", runRatelimit},
		"version":   {"print the version, commit, Go and OPA versions", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, now: time.Now,
		setMemoryLimit: debug.SetMemoryLimit, getenv: os.Getenv, readFile: os.ReadFile}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e *env, args []string) int {
	cmds := commands()
	if len(args) == 0 {
		usage(e.stderr, cmds)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stdout, cmds)
		return exitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "ccauthz: unknown command %q\n\n", args[0])
		usage(e.stderr, cmds)
		return exitUsage
	}
	return c.run(ctx, e, args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: ccauthz <command> [arguments]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'ccauthz <command> -h' for a command's help.")
}

// parseFlags parses args with fs the one way every subcommand does: -h,
// -help and --help print the usage to stdout and end the command with exit
// 0; a bad flag prints the problem and the usage to stderr and ends it with
// exit 2 (done is true then, and the command returns code). With interleaved,
// flags may also follow positional arguments (`catalog show NAME --at T`);
// pos are the positional arguments. A flag set's Usage writes to its
// Output(), which is stderr again once parsing is over.
func parseFlags(e *env, fs *flag.FlagSet, args []string, interleaved bool) (pos []string, code int, done bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	defer fs.SetOutput(e.stderr)
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			_, _ = e.stdout.Write(buf.Bytes())
			return nil, exitOK, true
		case err != nil:
			_, _ = e.stderr.Write(buf.Bytes())
			return nil, exitUsage, true
		}
		if !interleaved {
			return fs.Args(), 0, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, false
		}
		// After "--" everything is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), 0, false
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// subcommands dispatches `ccauthz <name> <sub> ...` to subs[sub]: no
// argument prints usage to stderr (exit 2), a help flag prints it to stdout
// (exit 0), an unknown subcommand names itself and prints usage (exit 2).
// Every command with subcommands goes through it, so they all agree.
func subcommands(e *env, name, usage string, args []string, subs map[string]func(args []string) int) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	if sub, ok := subs[args[0]]; ok {
		return sub(args[1:])
	}
	fmt.Fprintf(e.stderr, "ccauthz %s: unknown subcommand %q\n\n%s", name, args[0], usage)
	return exitUsage
}
