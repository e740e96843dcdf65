package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ccauthz/ccauthz/authz/server/assembly"
	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/catalog/site"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// exitDiffers is `catalog diff --exit-code` when the catalogs differ (git
// diff's convention, moved off 1, which means invalid input here).
const exitDiffers = 4

// catRepeated is a repeatable string flag (--manifest A --manifest B).
type catRepeated []string

func (r *catRepeated) String() string { return strings.Join(*r, ",") }
func (r *catRepeated) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty value")
	}
	*r = append(*r, v)
	return nil
}

// catalogLoadArg loads a catalog named on the command line: a path, or
// embedded:example for the bundled one.
func catalogLoadArg(e *env, what, path string) (*catalog.Catalog, bool) {
	c, err := assembly.LoadCatalog(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "%s\nccauthz catalog: %s catalog %s is invalid\n", err, what, path)
		return nil, false
	}
	return c, true
}

func catalogSite(e *env, args []string) int {
	fs := newCatalogFlags(e, "site", " --out DIR [flags]")
	path := fs.String("catalog", "", "catalog to show (default: the bundled example, with the bundled manifests unless --manifest is given)")
	var manifests catRepeated
	fs.Var(&manifests, "manifest", "a backend's service manifest, for the routes each unit primitive guards (repeatable; "+catManifestNames()+" are bundled)")
	old := fs.String("old", "", "an older catalog: adds a diff page from it to --catalog")
	out := fs.String("out", "", "directory to write the site into (created if missing)")
	atStr := catAtFlag(fs)
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return fs.usageError("unexpected arguments %q", pos)
	}
	if *out == "" {
		return fs.usageError("--out is required")
	}
	at, err := catParseAt(e, *atStr)
	if err != nil {
		return fs.usageError("--at: %v", err)
	}
	src := site.Source{}
	if *path == "" {
		src.Catalog = catalog.Example()
		if len(manifests) == 0 {
			// The bundled example catalog goes with the bundled manifests.
			for _, n := range manifest.ExampleNames() {
				manifests = append(manifests, "embedded:"+n)
			}
		}
	} else if src.Catalog, ok = catalogLoadArg(e, "the", *path); !ok {
		return exitInvalid
	}
	if *old != "" {
		if src.Old, ok = catalogLoadArg(e, "the old", *old); !ok {
			return exitInvalid
		}
	}
	var errs []error
	for _, p := range manifests {
		m, err := assembly.LoadManifest(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		src.Manifests = append(src.Manifests, m)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	d, err := site.NewDirectory(src, at)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	s, err := site.New()
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz catalog site: %v\n", err)
		return exitInvalid
	}
	n, err := s.Export(d, *out)
	if err != nil {
		fmt.Fprintf(e.stderr, "ccauthz catalog site: %v\n", err)
		return exitInvalid
	}
	fmt.Fprintf(e.stdout, "wrote %d files to %s: %s, %s, %s; open %s/index.html\n", n, *out,
		catPlural(len(src.Catalog.UnitPrimitives), "unit primitive"), catPlural(len(src.Catalog.AddOns), "add-on"),
		catPlural(len(src.Catalog.BackendServices), "backend"), strings.TrimSuffix(*out, "/"))
	return exitOK
}

func catalogDiff(e *env, args []string) int {
	fs := newCatalogFlags(e, "diff", " OLD NEW [flags]")
	format := catFormatFlag(fs, "text", "json")
	exitCode := fs.Bool("exit-code", false, fmt.Sprintf("exit %d when the catalogs differ (0 when they agree)", exitDiffers))
	pos, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return fs.usageError("want OLD and NEW catalogs, got %d arguments", len(pos))
	}
	if !catCheckFormat(*format, "text", "json") {
		return fs.usageError("--format must be text or json, got %q", *format)
	}
	old, ok := catalogLoadArg(e, "the old", pos[0])
	if !ok {
		return exitInvalid
	}
	new, ok := catalogLoadArg(e, "the new", pos[1])
	if !ok {
		return exitInvalid
	}
	d := catalog.Compare(old, new)
	var rc int
	if *format == "json" {
		rc = catWriteJSON(e, d)
	} else {
		writeDiffText(e.stdout, d)
	}
	if rc == exitOK && *exitCode && !d.Empty() {
		return exitDiffers
	}
	return rc
}

// writeDiffText prints a diff for a reviewer: each section only when it has
// something to say.
func writeDiffText(w io.Writer, d *catalog.Diff) {
	fmt.Fprintf(w, "catalog diff %s → %s\n", d.Old, d.New)
	if d.Empty() {
		fmt.Fprintln(w, "no differences")
		return
	}
	section := func(title string, items []string, mark string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d):\n", title, len(items))
		for _, it := range items {
			fmt.Fprintf(w, "  %s %s\n", mark, it)
		}
	}
	section("added unit primitives", d.Added, "+")
	section("removed unit primitives", d.Removed, "-")
	if len(d.Changed) > 0 {
		fmt.Fprintf(w, "\nchanged unit primitives (%d):\n", len(d.Changed))
		for _, c := range d.Changed {
			if c.RenamedFrom != "" {
				fmt.Fprintf(w, "  ~ %s (renamed from %s)\n", c.Name, c.RenamedFrom)
			} else {
				fmt.Fprintf(w, "  ~ %s\n", c.Name)
			}
			for _, f := range c.Fields {
				if f.Added != nil || f.Removed != nil {
					var parts []string
					for _, a := range f.Added {
						parts = append(parts, "+"+a)
					}
					for _, r := range f.Removed {
						parts = append(parts, "-"+r)
					}
					fmt.Fprintf(w, "      %s: %s\n", f.Field, strings.Join(parts, " "))
				} else {
					fmt.Fprintf(w, "      %s: %s → %s\n", f.Field, catDash(f.Old), catDash(f.New))
				}
			}
		}
	}
	if len(d.CutOffMoves) > 0 {
		fmt.Fprintf(w, "\ncut-off moves (%d):\n", len(d.CutOffMoves))
		for _, m := range d.CutOffMoves {
			fmt.Fprintf(w, "  %s: %s → %s (%s)\n", m.Name, catDate(m.Old), catDate(m.New), m.Kind())
		}
	}
	set := func(title string, s catalog.SetDiff) {
		if s.Empty() {
			return
		}
		var parts []string
		for _, a := range s.Added {
			parts = append(parts, "+"+a)
		}
		for _, r := range s.Removed {
			parts = append(parts, "-"+r)
		}
		fmt.Fprintf(w, "\n%s: %s\n", title, strings.Join(parts, " "))
	}
	set("add-ons", d.AddOns)
	set("license types", d.LicenseTypes)
	set("backend services", d.Backends)
	for _, a := range d.Audiences {
		fmt.Fprintf(w, "\nbackend %s: token audience %s → %s\n", a.Backend, a.Old, a.New)
	}
	set("services", d.Services)
	for _, s := range d.ServiceUPs {
		var parts []string
		for _, a := range s.Added {
			parts = append(parts, "+"+a)
		}
		for _, r := range s.Removed {
			parts = append(parts, "-"+r)
		}
		fmt.Fprintf(w, "service %s: %s\n", s.Name, strings.Join(parts, " "))
	}
}

// catManifestNames is for help text: the bundled example manifests.
func catManifestNames() string {
	names := manifest.ExampleNames()
	for i, n := range names {
		names[i] = "embedded:" + n
	}
	return strings.Join(names, ", ")
}
