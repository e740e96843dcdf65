package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/ccauthz/ccauthz/authz/token"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
	corerego "github.com/ccauthz/ccauthz/policy/rego"
	"github.com/ccauthz/ccauthz/policy/regogen"
)

// DecisionQuery is the query every policy answers.
const DecisionQuery = "data.ccauthz.main.decision"

// ExtraPackage is the only package an extra module may declare.
const ExtraPackage = "ccauthz.extra"

// DefaultCacheSize is the decision cache size when BuildOptions leaves it 0.
const DefaultCacheSize = 10000

// ErrExtraPackage is wrapped by Build when an extra module declares a
// package other than ExtraPackage.
var ErrExtraPackage = errors.New("extra Rego modules must be in package " + ExtraPackage)

// BuildOptions tunes Build.
type BuildOptions struct {
	// ExtraDir is a directory of extra Rego modules (*.rego, not recursive,
	// *_test.rego skipped) in package ccauthz.extra. They are compiled in and
	// may only further restrict: each message in their `deny` set turns an
	// otherwise-allowed request into a 403 extra_policy_deny.
	ExtraDir string
	// AllowBuiltins names the ExcludedBuiltins the extra modules may call
	// (config: the backend's extra_rego_builtins). Default none.
	AllowBuiltins []string
	// CacheSize bounds the decision cache (entries). 0 means
	// DefaultCacheSize; a negative value disables the cache.
	CacheSize int
}

// Policy is a compiled, immutable policy revision for one backend. It is safe
// for concurrent use; its decision cache belongs to it, so a rebuild starts
// with an empty cache.
type Policy struct {
	revision string
	backend  string
	audience string
	gen      *regogen.Output
	query    rego.PreparedEvalQuery // verdictQuery
	decision rego.PreparedEvalQuery // DecisionQuery, when a verdict cannot be expanded
	// txn is one read transaction on the queries' store (empty: the
	// policy is all modules), opened at build and shared by every
	// evaluation instead of opening one per evaluation (evalOptions).
	txn      storage.Transaction
	fast     fastConsts
	compiler *ast.Compiler // kept for tests that evaluate other rules
	reads    reads
	// shape is what of the headers and claims evaluation gives Rego.
	shape inputShape
	cache *decisionCache // nil when disabled
	// grantKeyed is true when decisions are keyed on the token's grant digest
	// rather than its hash (see grantKeyable); grantWhyNot says why not.
	grantKeyed  bool
	grantWhyNot string
	stats       counters
	extra       []string // extra module files, sorted
	// bodySelectors are what the manifest's body rules read of a request
	// body: the decision cache keys on their values (writeBodyKey).
	bodySelectors []manifest.Selector
	// routes is the request part of the cache key (routekey.go).
	routes *routeKeys
	// bindings and seats are the manifest's, for the identity step and the
	// bindings' outcome in the cache key.
	bindings []manifest.Binding
	seats    manifest.SeatBuckets
}

// Build generates the Rego for the catalog and manifest, compiles it with the
// embedded core module and any extra modules, analyses what it reads, and
// prepares the decision query once. The manifest is bound to the catalog if
// it is not already; every validation problem is returned at once.
func Build(cat *catalog.Catalog, m *manifest.Manifest, opts BuildOptions) (*Policy, error) {
	if cat == nil || m == nil {
		return nil, errors.New("policy: a catalog and a manifest are required")
	}
	if !m.Bound() {
		bound, err := m.Bind(cat)
		if err != nil {
			return nil, err
		}
		m = bound
	}
	out, err := regogen.Generate(cat, m)
	if err != nil {
		return nil, err
	}
	sources := map[string]string{
		corerego.CoreFile:  corerego.Core(),
		regogen.ModuleFile: out.Module,
	}
	var extraFiles []string
	if opts.ExtraDir != "" {
		extra, err := readExtra(opts.ExtraDir)
		if err != nil {
			return nil, err
		}
		for name, src := range extra {
			sources[name] = src
			extraFiles = append(extraFiles, name)
		}
		sort.Strings(extraFiles)
	}
	modules := make(map[string]*ast.Module, len(sources))
	for name, src := range sources {
		mod, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		modules[name] = mod
	}
	for _, name := range extraFiles {
		if got := modules[name].Package.Path.String(); got != "data."+ExtraPackage {
			return nil, fmt.Errorf("policy: %s: package %s: %w", name, strings.TrimPrefix(got, "data."), ErrExtraPackage)
		}
	}
	caps, err := capabilities(opts.AllowBuiltins)
	if err != nil {
		return nil, err
	}
	if err := checkExtraBuiltins(modules, extraFiles, opts.AllowBuiltins); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	compiler := ast.NewCompiler().WithCapabilities(caps)
	compiler.Compile(modules)
	if compiler.Failed() {
		return nil, fmt.Errorf("policy: compile: %w", compiler.Errors)
	}
	// The store holds no data and nothing writes to it, so one read
	// transaction serves every evaluation for the policy's life (an inmem
	// read transaction only holds the store's read lock, which no writer
	// ever waits for).
	store := inmem.New()
	txn, err := store.NewTransaction(context.Background())
	if err != nil {
		return nil, fmt.Errorf("policy: store: %w", err)
	}
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		pq, err := rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.Transaction(txn),
			rego.GenerateJSON(keepTerm),
		).PrepareForEval(context.Background())
		if err != nil {
			return pq, fmt.Errorf("policy: prepare: %w", err)
		}
		return pq, nil
	}
	pq, err := prepare(verdictQuery)
	if err != nil {
		return nil, err
	}
	dq, err := prepare(DecisionQuery)
	if err != nil {
		return nil, err
	}
	fast, err := readFastConsts(compiler)
	if err != nil {
		return nil, err
	}

	p := &Policy{
		revision: revision(out.InputHash, sources),
		backend:  m.Backend,
		audience: m.Audience,
		gen:      out,
		query:    pq,
		decision: dq,
		txn:      txn,
		fast:     fast,
		compiler: compiler,
		reads:    analyse(compiler, extraFiles),
		extra:    extraFiles,

		bodySelectors: m.BodySelectors(),
		bindings:      m.Bindings,
		seats:         m.SeatBuckets,
	}
	p.shape = newInputShape(compiler, p.reads)
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 && p.reads.cacheable() {
		p.cache = newDecisionCache(size)
	}
	p.routes = newRouteKeys(cat, m, compiler, extraFiles)
	p.grantKeyed, p.grantWhyNot = grantKeyable(compiler, extraFiles, token.PerTokenClaims())
	if p.grantKeyed && p.reads.claimsExtra {
		// An extra module read the claims through a rule of the core
		// (data.ccauthz.main.claims), which grantKeyable does not see.
		p.grantKeyed, p.grantWhyNot = false, p.reads.claimsDynamic
	}
	return p, nil
}

// SourceDigest names everything Build would compile for cat, m and opts:
// the generator's input hash, every extra module (file name and content),
// the builtins the extra modules may call and the cache size. Two builds
// with the same SourceDigest produce the same policy, so a reload whose digest is unchanged may keep the policy it has
// (and its warm decision cache). It reads the extra directory, nothing else.
func SourceDigest(cat *catalog.Catalog, m *manifest.Manifest, opts BuildOptions) (string, error) {
	if cat == nil || m == nil {
		return "", errors.New("policy: a catalog and a manifest are required")
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", regogen.InputHash(cat, m), opts.CacheSize)
	allowed := slices.Clone(opts.AllowBuiltins)
	slices.Sort(allowed)
	fmt.Fprintf(h, "%d\x00", len(allowed))
	for _, b := range allowed {
		fmt.Fprintf(h, "%s\x00", b)
	}
	if opts.ExtraDir != "" {
		extra, err := readExtra(opts.ExtraDir)
		if err != nil {
			return "", err
		}
		names := make([]string, 0, len(extra))
		for n := range extra {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(h, "%s\x00%d\x00%s", n, len(extra[n]), extra[n])
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// keepTerm makes evaluation hand back the result as the Rego term itself, so
// the decision is read without converting it to Go values and back.
func keepTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

func readExtra(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("policy: extra modules: %w", err)
	}
	out := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, "_test.rego") {
			continue
		}
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("policy: extra modules: %w", err)
		}
		out[path] = string(b)
	}
	return out, nil
}

// revision hashes the generator's input hash and every compiled source.
func revision(inputHash string, sources map[string]string) string {
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	h.Write([]byte(inputHash))
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s\x00%d\x00%s", filepath.Base(n), len(sources[n]), sources[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Revision names the compiled revision: the SHA-256 of the generator input
// hash and every compiled module.
func (p *Policy) Revision() string { return p.revision }

// ReadsBody reports whether any decision of this policy can depend on the
// request body: the manifest has body rules, or an extra module reads it.
// A check for a policy that does not need not decode one.
func (p *Policy) ReadsBody() bool { return len(p.bodySelectors) > 0 || p.reads.body }

// Backend is the catalog name of the protected backend.
func (p *Policy) Backend() string { return p.backend }

// Audience is the backend's jwt_aud, the audience tokens must carry.
func (p *Policy) Audience() string { return p.audience }

// Generated returns what the generator produced for this policy (the data
// module, the test suites and their cases).
func (p *Policy) Generated() *regogen.Output { return p.gen }
