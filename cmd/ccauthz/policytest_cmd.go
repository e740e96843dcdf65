package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

const policyTestUsage = `usage: ccauthz policy test DIR [-v] [--coverage] [--run REGEX] [--timeout D]

Run the opa test suites of a 'ccauthz policy build' output directory with
OPA's own test runner (the engine of 'opa test', linked in): every test_
rule of DIR's .rego files. Prints failures (every test with -v) and a count;
--coverage adds the coverage of each file and overall, in percent.

A policy author's loop:
  bin/ccauthz policy build --manifest my_backend.yaml --out build/policy
  bin/ccauthz policy test build/policy --coverage
  (edit the manifest or the extra Rego, then build and test again)

Exit codes: 0 every test passed, 1 DIR does not load or compile, 2 usage,
3 a test failed or errored, or no test matched --run.

Flags:
`

// policyTestSummary counts one run's outcomes.
type policyTestSummary struct {
	passed, failed, errored, skipped int
}

func policyTest(ctx context.Context, e *env, args []string) int {
	fs := policyFlagSet(e, "test", policyTestUsage)
	verbose := fs.Bool("v", false, "print every test and the trace of failing ones")
	coverage := fs.Bool("coverage", false, "print the coverage per file and overall (percent)")
	runRe := fs.String("run", "", "run only the tests whose package.name matches this regular expression")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit of each test")
	pos, code, done := parseFlags(e, fs, args, true)
	if done {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(e.stderr, "ccauthz policy test: want exactly one DIR, got %d arguments\n", len(pos))
		fs.Usage()
		return exitUsage
	}
	if *runRe != "" {
		if _, err := regexp.Compile(*runRe); err != nil {
			fmt.Fprintf(e.stderr, "ccauthz policy test: --run: %v\n", err)
			return exitUsage
		}
	}
	if *timeout <= 0 {
		fmt.Fprintln(e.stderr, "ccauthz policy test: --timeout must be positive")
		return exitUsage
	}
	dir := pos[0]
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		fmt.Fprintf(e.stderr, "ccauthz policy test: %s: %v\n", dir, policyTestPathErr(err))
		return exitInvalid
	}
	modules, store, err := tester.LoadWithParserOptions([]string{dir}, nil, ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy test: %v\n", err)
		return exitInvalid
	}
	if len(modules) == 0 {
		fmt.Fprintf(e.stderr, "ccauthz policy test: %s holds no .rego files (run 'ccauthz policy build' first)\n", dir)
		return exitInvalid
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz policy test: %v\n", err)
		return exitInvalid
	}
	defer store.Abort(ctx, txn)

	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion())
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		EnableTracing(*verbose).
		SetTimeout(*timeout).
		Filter(*runRe)
	var cov *cover.Cover
	if *coverage {
		cov = cover.New()
		runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		// Load and compile errors: the directory is not a valid policy.
		fmt.Fprintf(e.stderr, "ccauthz policy test: %v\n", err)
		return exitInvalid
	}
	var sum policyTestSummary
	for r := range ch {
		policyTestReport(e, r, *verbose, &sum)
	}
	total := sum.passed + sum.failed + sum.errored + sum.skipped
	fmt.Fprintf(e.stdout, "%s: %d passed, %d failed, %d errors, %d skipped (%s)\n", dir, sum.passed, sum.failed, sum.errored, sum.skipped, catPlural(total, "test"))
	if cov != nil {
		policyTestCoverage(e, cov.Report(modules), dir, *verbose)
	}
	switch {
	case sum.failed+sum.errored > 0:
		return exitPolicyTests
	case sum.passed == 0:
		fmt.Fprintf(e.stderr, "ccauthz policy test: no test ran (--run %q matched none)\n", *runRe)
		return exitPolicyTests
	}
	return exitOK
}

// policyTestReport prints one result: failures and errors always, passes
// with -v.
func policyTestReport(e *env, r *tester.Result, verbose bool, sum *policyTestSummary) {
	name := r.Package + "." + r.Name
	loc := ""
	if r.Location != nil {
		loc = fmt.Sprintf("%s:%d: ", r.Location.File, r.Location.Row)
	}
	switch {
	case r.Skip:
		sum.skipped++
		if verbose {
			fmt.Fprintf(e.stdout, "SKIP  %s\n", name)
		}
		return
	case r.Error != nil:
		sum.errored++
		fmt.Fprintf(e.stdout, "ERROR %s%s: %v\n", loc, name, r.Error)
	case r.Fail:
		sum.failed++
		fmt.Fprintf(e.stdout, "FAIL  %s%s (%s)\n", loc, name, r.Duration.Round(time.Microsecond))
		if verbose && len(r.Trace) > 0 {
			var b strings.Builder
			topdown.PrettyTraceWithLocation(&b, r.Trace)
			fmt.Fprint(e.stdout, indentLines(b.String(), "      "))
		}
	default:
		sum.passed++
		if verbose {
			fmt.Fprintf(e.stdout, "PASS  %s (%s)\n", name, r.Duration.Round(time.Microsecond))
		}
	}
	if len(r.Output) > 0 && (verbose || !r.Pass()) {
		fmt.Fprint(e.stdout, indentLines(string(r.Output), "      "))
	}
}

// policyTestCoverage prints the coverage summary: one line per policy file
// (test files too with -v), then the overall figure; 'opa test --coverage'
// dumps the same report as JSON, every covered range included.
func policyTestCoverage(e *env, rep cover.Report, dir string, verbose bool) {
	files := make([]string, 0, len(rep.Files))
	for f := range rep.Files {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fr := rep.Files[f]
		name := f
		if rel, err := filepath.Rel(dir, f); err == nil && !strings.HasPrefix(rel, "..") {
			name = filepath.ToSlash(rel)
		}
		if !verbose && strings.HasSuffix(name, "_test.rego") {
			continue
		}
		fmt.Fprintf(e.stdout, "  coverage %6.2f%%  %s (%d of %d lines)\n", fr.Coverage, name, fr.CoveredLines, fr.CoveredLines+fr.NotCoveredLines)
	}
	fmt.Fprintf(e.stdout, "coverage: %.2f%%\n", rep.Coverage)
}

func indentLines(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix) + "\n"
}

func policyTestPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
