package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
)

const catalogUsage = `usage: ccauthz catalog <subcommand> [arguments]

subcommands:
  validate PATH       check a catalog (layout directory, legacy access_data.yml or sync JSON);
                      exit 0 and a summary if valid, 1 and every problem on stderr if not
  list                list unit primitives
                        [--catalog PATH] [--backend NAME|AUDIENCE] [--add-on NAME] [--format table|json]
  show NAME           everything about one unit primitive (NAME may be an alias)
                        [--catalog PATH] [--at TIME] [--format text|json]
  scopes              the scopes and audiences an issuer grants for a set of add-ons at a time
                        [--add-ons a,b] [--at TIME] [--catalog PATH] [--format table|json]
  diff OLD NEW        what changed between two catalogs: unit primitives added, removed and
                      changed, cut-off moves, add-ons, backends and audiences
                        [--format text|json] [--exit-code]
  site                export the unit-primitive directory as a static web site
                        --out DIR [--catalog PATH] [--manifest PATH]... [--old PATH] [--at TIME]

Without --catalog the bundled example catalog is used. TIME is RFC 3339
(2025-01-01T00:00:00Z) or a catalog date (2025-01-01); it defaults to now.
A catalog argument may be embedded:example, and a --manifest embedded:ai_gateway
or embedded:duo_workflow (the bundled examples).
Exit codes: 0 ok, 1 invalid catalog, 2 usage (bad flags, unknown names);
diff --exit-code: 4 when the catalogs differ.
`

// runCatalog implements `ccauthz catalog`.
func runCatalog(_ context.Context, e *env, args []string) int {
	return subcommands(e, "catalog", catalogUsage, args, map[string]func([]string) int{
		"validate": func(a []string) int { return catalogValidate(e, a) },
		"list":     func(a []string) int { return catalogList(e, a) },
		"show":     func(a []string) int { return catalogShow(e, a) },
		"scopes":   func(a []string) int { return catalogScopes(e, a) },
		"diff":     func(a []string) int { return catalogDiff(e, a) },
		"site":     func(a []string) int { return catalogSite(e, a) },
	})
}

// catalogFlags is a flag set that reports to stderr and lets flags follow
// positional arguments (`catalog show duo_chat --at 2025-01-01`).
type catalogFlags struct {
	*flag.FlagSet
	e    *env
	name string
	args string // positional arguments, for the usage line
}

func newCatalogFlags(e *env, name, args string) *catalogFlags {
	fs := flag.NewFlagSet("ccauthz catalog "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	s := &catalogFlags{FlagSet: fs, e: e, name: name, args: args}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ccauthz catalog %s%s\n", name, args)
		fs.PrintDefaults()
	}
	return s
}

// parse parses flags wherever they appear and returns the positional
// arguments; code is the exit code to return when ok is false.
func (s *catalogFlags) parse(args []string) (positional []string, code int, ok bool) {
	positional, code, done := parseFlags(s.e, s.FlagSet, args, true)
	return positional, code, !done
}

// usageError reports malformed arguments, with the subcommand's usage.
func (s *catalogFlags) usageError(format string, args ...any) int {
	s.argError(format, args...)
	s.Usage()
	return exitUsage
}

// argError reports an argument naming something the catalog does not have.
func (s *catalogFlags) argError(format string, args ...any) int {
	fmt.Fprintf(s.e.stderr, "ccauthz catalog %s: %s\n", s.name, fmt.Sprintf(format, args...))
	return exitUsage
}

// catalogLoad loads path, or the bundled example when path is empty, and
// prints every problem when it is invalid.
func catalogLoad(e *env, path string) (*catalog.Catalog, bool) {
	if path == "" {
		return catalog.Example(), true
	}
	c, err := catalog.Load(path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return nil, false
	}
	return c, true
}

func catalogValidate(e *env, args []string) int {
	fs := newCatalogFlags(e, "validate", " PATH")
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fs.usageError("want exactly one PATH, got %d arguments", len(pos))
	}
	c, err := catalog.Load(pos[0])
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		var ve *catalog.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stderr, "%s: invalid catalog: %s\n", pos[0], catPlural(len(ve.Problems), "problem"))
		}
		return exitInvalid
	}
	fmt.Fprintf(e.stdout, "%s: valid %s catalog: %s, %s, %s, %s, %s; digest %s\n",
		pos[0], c.Shape,
		catPlural(len(c.UnitPrimitives), "unit primitive"), catPlural(len(c.BackendServices), "backend service"),
		catPlural(len(c.AddOns), "add-on"), catPlural(len(c.LicenseTypes), "license type"),
		catPlural(len(c.Services), "service"), c.Digest())
	return exitOK
}

func catPlural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// catFormatFlag registers --format with the allowed values.
func catFormatFlag(fs *catalogFlags, values ...string) *string {
	return fs.String("format", values[0], "output format: "+strings.Join(values, " or "))
}

func catCheckFormat(got string, values ...string) bool {
	return slices.Contains(values, got)
}

// catUPView is a unit primitive as the CLI prints it in JSON.
type catUPView struct {
	*catalog.UnitPrimitive
	Audiences  []string `json:"audiences"`
	Deprecated bool     `json:"deprecated"`
}

func catViewOf(c *catalog.Catalog, u *catalog.UnitPrimitive) catUPView {
	return catUPView{UnitPrimitive: u, Audiences: catNonNil(c.Audiences(u.Name)), Deprecated: u.Deprecated()}
}

func catalogList(e *env, args []string) int {
	fs := newCatalogFlags(e, "list", " [flags]")
	path := fs.String("catalog", "", "catalog to read (default: the bundled example)")
	backend := fs.String("backend", "", "only unit primitives served by this backend (catalog name or jwt_aud)")
	addOn := fs.String("add-on", "", "only unit primitives bundled with this add-on")
	format := catFormatFlag(fs, "table", "json")
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return fs.usageError("unexpected arguments %q", pos)
	}
	if !catCheckFormat(*format, "table", "json") {
		return fs.usageError("--format must be table or json, got %q", *format)
	}
	c, ok := catalogLoad(e, *path)
	if !ok {
		return exitInvalid
	}
	var ups []*catalog.UnitPrimitive
	for _, name := range c.UnitPrimitiveNames() {
		ups = append(ups, c.UnitPrimitives[name])
	}
	if *backend != "" {
		if _, ok := c.Backend(*backend); !ok {
			return fs.argError("unknown backend %q%s (known: %s)", *backend, catalog.DidYouMean(*backend, catBackendKeys(c)), strings.Join(catBackendNames(c), ", "))
		}
		ups = c.UnitPrimitivesOfBackend(*backend)
	}
	if *addOn != "" {
		if _, ok := c.AddOns[*addOn]; !ok {
			return fs.argError("unknown add-on %q%s (known: %s)", *addOn, catalog.DidYouMean(*addOn, catKeys(c.AddOns)), strings.Join(catKeys(c.AddOns), ", "))
		}
		bundled := c.UnitPrimitivesOfAddOn(*addOn)
		ups = slices.DeleteFunc(ups, func(u *catalog.UnitPrimitive) bool { return !slices.Contains(bundled, u) })
	}

	if *format == "json" {
		views := make([]catUPView, 0, len(ups))
		for _, u := range ups {
			views = append(views, catViewOf(c, u))
		}
		return catWriteJSON(e, views)
	}
	tw := catNewTable(e.stdout)
	fmt.Fprintln(tw, "UNIT PRIMITIVE\tAUDIENCES\tADD-ONS\tLICENSE TYPES\tCUT-OFF\tMIN VERSION\tMIN FREE VERSION\tNOTES")
	for _, u := range ups {
		var notes []string
		if u.Deprecated() {
			notes = append(notes, "deprecated")
		}
		if len(u.AliasNames) > 0 {
			notes = append(notes, "aliases: "+strings.Join(u.AliasNames, ", "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, catList(c.Audiences(u.Name)), catList(u.AddOns),
			catList(u.LicenseTypes), catDate(u.CutOffDate), catDash(u.MinGitLabVersion),
			catDash(u.MinGitLabVersionForFreeAccess), catDash(strings.Join(notes, "; ")))
	}
	return catFlushTable(e, tw)
}

// catAtFlag registers --at.
func catAtFlag(fs *catalogFlags) *string {
	return fs.String("at", "", "the time to evaluate free access at: RFC 3339 or a catalog date (default: now)")
}

func catParseAt(e *env, s string) (time.Time, error) {
	if s == "" {
		return e.now().UTC(), nil
	}
	return catalog.ParseDate(s)
}

// catShowView is `catalog show --format json`.
type catShowView struct {
	catUPView
	LookedUpAs string    `json:"looked_up_as,omitempty"`
	At         time.Time `json:"at"`
	FreeAt     bool      `json:"free_at"`
	Services   []string  `json:"services"`
	Catalog    string    `json:"catalog"`
}

func catalogShow(e *env, args []string) int {
	fs := newCatalogFlags(e, "show", " NAME [flags]")
	path := fs.String("catalog", "", "catalog to read (default: the bundled example)")
	atStr := catAtFlag(fs)
	format := catFormatFlag(fs, "text", "json")
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fs.usageError("want exactly one unit primitive NAME, got %d arguments", len(pos))
	}
	if !catCheckFormat(*format, "text", "json") {
		return fs.usageError("--format must be text or json, got %q", *format)
	}
	at, err := catParseAt(e, *atStr)
	if err != nil {
		return fs.usageError("--at: %v", err)
	}
	c, ok := catalogLoad(e, *path)
	if !ok {
		return exitInvalid
	}
	u, found := c.Lookup(pos[0])
	if !found {
		return fs.argError("unknown unit primitive %q%s", pos[0], catalog.DidYouMean(pos[0], catUPNames(c)))
	}
	var services []string
	for _, name := range catKeys(c.Services) {
		if slices.Contains(c.Services[name].UnitPrimitives, u.Name) {
			services = append(services, name)
		}
	}
	free := u.FreeAt(at)

	if *format == "json" {
		v := catShowView{catUPView: catViewOf(c, u), At: at, FreeAt: free, Services: catNonNil(services), Catalog: c.Source}
		if pos[0] != u.Name {
			v.LookedUpAs = pos[0]
		}
		return catWriteJSON(e, v)
	}

	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("unit primitive", u.Name)
	if pos[0] != u.Name {
		row("looked up as", pos[0]+" (an alias)")
	}
	row("description", catDash(u.Description))
	row("group", catDash(u.Group))
	row("feature category", catDash(u.FeatureCategory))
	row("documentation", catDash(u.DocumentationURL))
	row("milestone", catDash(u.Milestone))
	if u.Deprecated() {
		row("deprecated", strings.TrimSpace(strings.Join([]string{u.DeprecationMessage, u.DeprecatedByURL}, " ")))
	} else {
		row("deprecated", "no")
	}
	row("alias names", catList(u.AliasNames))
	var backends []string
	for _, b := range u.BackendServices {
		if bs, ok := c.BackendServices[b]; ok {
			backends = append(backends, fmt.Sprintf("%s (%s)", b, bs.JWTAud))
		}
	}
	row("backend services", catList(backends))
	row("audiences", catList(c.Audiences(u.Name)))
	row("add-ons", catList(u.AddOns))
	row("license types", catList(u.LicenseTypes))
	row("cut-off date", catDate(u.CutOffDate))
	row("free at "+at.Format(time.RFC3339), catYesNo(free))
	row("granted by", catGrantedBy(u, at))
	row("min GitLab version", catDash(u.MinGitLabVersion))
	row("min version, free", catDash(u.MinGitLabVersionForFreeAccess))
	row("services", catList(services))
	row("catalog", fmt.Sprintf("%s (%s)", c.Source, c.Shape))
	return catFlushTable(e, tw)
}

// catGrantedBy says in words who gets the unit primitive at t (facts §4.2: free
// access while the cut-off is in the future, then any one of its add-ons).
func catGrantedBy(u *catalog.UnitPrimitive, at time.Time) string {
	paid := "no one (no add-on)"
	if len(u.AddOns) > 0 {
		paid = "holders of any of: " + strings.Join(u.AddOns, ", ")
	}
	switch {
	case u.CutOffDate == nil:
		return "everyone (free access, no cut-off date)"
	case u.FreeAt(at):
		return fmt.Sprintf("everyone until %s, then %s", catDate(u.CutOffDate), paid)
	default:
		return paid
	}
}

// catScopeView is one granted scope in `catalog scopes --format json`.
type catScopeView struct {
	Name       string   `json:"name"`
	Audiences  []string `json:"audiences"`
	FreeAccess bool     `json:"free_access"`
	AddOns     []string `json:"add_ons"` // the held add-ons that bundle it
}

type catScopesView struct {
	At        time.Time      `json:"at"`
	AddOns    []string       `json:"add_ons"`
	Scopes    []catScopeView `json:"scopes"`
	Audiences []string       `json:"audiences"`
	Catalog   string         `json:"catalog"`
}

func catalogScopes(e *env, args []string) int {
	fs := newCatalogFlags(e, "scopes", " [flags]")
	path := fs.String("catalog", "", "catalog to read (default: the bundled example)")
	addOnsStr := fs.String("add-ons", "", "comma-separated add-ons the customer holds (none: only free access)")
	atStr := catAtFlag(fs)
	format := catFormatFlag(fs, "table", "json")
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return fs.usageError("unexpected arguments %q", pos)
	}
	if !catCheckFormat(*format, "table", "json") {
		return fs.usageError("--format must be table or json, got %q", *format)
	}
	at, err := catParseAt(e, *atStr)
	if err != nil {
		return fs.usageError("--at: %v", err)
	}
	c, ok := catalogLoad(e, *path)
	if !ok {
		return exitInvalid
	}
	addOns := []string{}
	for _, a := range strings.Split(*addOnsStr, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		// An unknown add-on would silently grant nothing: say so instead.
		if _, known := c.AddOns[a]; !known {
			return fs.argError("unknown add-on %q%s (known: %s)", a, catalog.DidYouMean(a, catKeys(c.AddOns)), strings.Join(catKeys(c.AddOns), ", "))
		}
		addOns = append(addOns, a)
	}
	sort.Strings(addOns)
	addOns = slices.Compact(addOns)

	g := c.Grant(addOns, at)
	views := make([]catScopeView, 0, len(g.Scopes))
	for _, s := range g.Scopes {
		u := c.UnitPrimitives[s]
		held := []string{}
		for _, a := range u.AddOns {
			if slices.Contains(addOns, a) {
				held = append(held, a)
			}
		}
		views = append(views, catScopeView{Name: s, Audiences: catNonNil(c.Audiences(s)), FreeAccess: u.FreeAt(at), AddOns: held})
	}
	if *format == "json" {
		return catWriteJSON(e, catScopesView{At: at, AddOns: addOns, Scopes: views, Audiences: g.Audiences, Catalog: c.Source})
	}
	tw := catNewTable(e.stdout)
	fmt.Fprintln(tw, "SCOPE\tAUDIENCES\tGRANTED BY")
	for _, v := range views {
		var why []string
		if v.FreeAccess {
			if u := c.UnitPrimitives[v.Name]; u.CutOffDate != nil {
				why = append(why, "free access until "+catDate(u.CutOffDate))
			} else {
				why = append(why, "free access")
			}
		}
		why = append(why, v.AddOns...)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, catList(v.Audiences), strings.Join(why, ", "))
	}
	return catFlushTable(e, tw)
}

func catNewTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func catFlushTable(e *env, tw *tabwriter.Writer) int {
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz catalog: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

func catWriteJSON(e *env, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(e.stderr, "ccauthz catalog: %v\n", err)
		return exitInvalid
	}
	return exitOK
}

func catBackendNames(c *catalog.Catalog) []string {
	var out []string
	for _, name := range catKeys(c.BackendServices) {
		out = append(out, fmt.Sprintf("%s (%s)", name, c.BackendServices[name].JWTAud))
	}
	return out
}

// catBackendKeys are the names a backend may be looked up by: catalog names
// and audiences.
func catBackendKeys(c *catalog.Catalog) []string {
	var out []string
	for _, name := range catKeys(c.BackendServices) {
		out = append(out, name, c.BackendServices[name].JWTAud)
	}
	return out
}

// catUPNames are the names a unit primitive may be looked up by: its own
// and its aliases.
func catUPNames(c *catalog.Catalog) []string {
	var out []string
	for _, name := range c.UnitPrimitiveNames() {
		out = append(out, name)
		out = append(out, c.UnitPrimitives[name].AliasNames...)
	}
	return out
}

func catKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func catNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func catList(s []string) string { return catDash(strings.Join(s, ", ")) }

func catDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func catDate(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func catYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
