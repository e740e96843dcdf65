package site

import (
	"errors"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
	"github.com/ccauthz/ccauthz/policy/manifest"
)

// SoonWindow is how far ahead a cut-off date counts as "cut-off soon".
const SoonWindow = 90 * 24 * time.Hour

// Statuses a unit primitive can have in the index filter; one unit primitive
// has one of free/paid and may also be deprecated and cut-off-soon.
const (
	StatusFree       = "free"
	StatusPaid       = "paid"
	StatusDeprecated = "deprecated"
	StatusSoon       = "cut-off-soon"
)

// Source is what the directory shows: a catalog, the service manifests of
// the backends it protects, and optionally an older catalog to diff against.
type Source struct {
	Catalog   *catalog.Catalog
	Manifests []*manifest.Manifest // bound to Catalog, or bound by NewDirectory
	Old       *catalog.Catalog     // nil: no diff page
}

// Directory is a Source prepared for rendering at one instant. It is
// immutable.
type Directory struct {
	cat       *catalog.Catalog
	manifests []*manifest.Manifest
	uses      map[string][]RouteUse
	diff      *catalog.Diff
	now       time.Time
}

// NewDirectory binds the manifests to the catalog (every problem at once)
// and indexes which routes require which unit primitive. now decides the
// free/paid/cut-off-soon status and the grant calculator's default date.
func NewDirectory(src Source, now time.Time) (*Directory, error) {
	if src.Catalog == nil {
		return nil, errors.New("site: no catalog")
	}
	d := &Directory{cat: src.Catalog, now: now.UTC()}
	var errs []error
	seen := map[string]bool{} // backend + digest: one backend may be configured twice
	for _, m := range src.Manifests {
		if m == nil {
			continue
		}
		if !m.Bound() {
			b, err := m.Bind(src.Catalog)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			m = b
		}
		if key := m.Backend + " " + m.Digest(); !seen[key] {
			seen[key] = true
			d.manifests = append(d.manifests, m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(d.manifests, func(i, j int) bool { return d.manifests[i].Backend < d.manifests[j].Backend })
	d.uses = RouteUses(d.manifests, src.Catalog.UnitPrimitiveNames(), func(backend, up string) bool {
		u, ok := src.Catalog.UnitPrimitives[up]
		return ok && slices.Contains(u.BackendServices, backend)
	})
	if src.Old != nil {
		d.diff = catalog.Compare(src.Old, src.Catalog)
	}
	return d, nil
}

// Catalog is the catalog the directory shows.
func (d *Directory) Catalog() *catalog.Catalog { return d.cat }

// Uses returns the routes that require the unit primitive.
func (d *Directory) Uses(up string) []RouteUse { return d.uses[up] }

// Statuses returns the index statuses of a unit primitive at the directory's
// instant.
func (d *Directory) Statuses(u *catalog.UnitPrimitive) []string {
	var out []string
	if u.FreeAt(d.now) {
		out = append(out, StatusFree)
	} else {
		out = append(out, StatusPaid)
	}
	if u.Deprecated() {
		out = append(out, StatusDeprecated)
	}
	if u.CutOffDate != nil && u.CutOffDate.After(d.now) && !u.CutOffDate.After(d.now.Add(SoonWindow)) {
		out = append(out, StatusSoon)
	}
	return out
}

// Filter is the index's search and filters (the GET form's fields); an
// empty field does not filter.
type Filter struct {
	Query, Backend, AddOn, License, Group, Category, Status string
}

// Matches reports whether a unit primitive passes the filter. The query
// matches the name, an alias, the description, the group or the feature
// category, case-insensitively.
func (d *Directory) Matches(f Filter, u *catalog.UnitPrimitive) bool {
	if q := strings.ToLower(strings.TrimSpace(f.Query)); q != "" && !strings.Contains(searchText(u), q) {
		return false
	}
	return (f.Backend == "" || slices.Contains(u.BackendServices, f.Backend)) &&
		(f.AddOn == "" || slices.Contains(u.AddOns, f.AddOn)) &&
		(f.License == "" || slices.Contains(u.LicenseTypes, f.License)) &&
		(f.Group == "" || u.Group == f.Group) &&
		(f.Category == "" || u.FeatureCategory == f.Category) &&
		(f.Status == "" || slices.Contains(d.Statuses(u), f.Status))
}

// searchText is what the free-text search looks in; the JavaScript filter
// reads the same text from the row's data-search attribute.
func searchText(u *catalog.UnitPrimitive) string {
	parts := append([]string{u.Name, u.Description, u.Group, u.FeatureCategory}, u.AliasNames...)
	return strings.ToLower(strings.Join(parts, " "))
}

// sourceName is the catalog's file name without its directory: pages never
// show a machine path.
func sourceName(c *catalog.Catalog) string {
	if c == nil || c.Source == "" {
		return ""
	}
	return baseName(c.Source)
}

// baseName is the last element of a slash or backslash separated path.
func baseName(p string) string {
	if p == "" {
		return ""
	}
	return path.Base(strings.ReplaceAll(p, "\\", "/"))
}
