package catalog

import (
	"slices"
	"strings"
	"time"
)

// Diff is what changed between two catalogs, as a reviewer of a catalog
// change needs it: unit primitives added, removed and changed (field by
// field, with cut-off moves called out), and the add-ons, license types and
// backends (with their token audience) that came or went. Every list is
// sorted by name, so two diffs of the same catalogs are equal.
type Diff struct {
	Old string `json:"old"` // Source of the old catalog
	New string `json:"new"` // Source of the new catalog

	Added   []string   `json:"added"`   // unit primitives only in New
	Removed []string   `json:"removed"` // unit primitives only in Old
	Changed []UPChange `json:"changed"` // unit primitives in both (or renamed) that differ

	AddOns       SetDiff         `json:"add_ons"`
	LicenseTypes SetDiff         `json:"license_types"`
	Backends     SetDiff         `json:"backend_services"`
	Audiences    []AudienceMove  `json:"audience_changes"` // backends whose jwt_aud changed
	CutOffMoves  []CutOffMove    `json:"cut_off_moves"`    // every cut-off change, also listed in Changed
	Services     SetDiff         `json:"services"`
	ServiceUPs   []ServiceChange `json:"service_changes"` // services whose unit primitives changed
}

// SetDiff lists the names added to and removed from a set of entities.
type SetDiff struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// Empty reports whether nothing was added or removed.
func (s SetDiff) Empty() bool { return len(s.Added) == 0 && len(s.Removed) == 0 }

// UPChange is one unit primitive that differs between the catalogs.
type UPChange struct {
	Name string `json:"name"`
	// RenamedFrom is the old name when the unit primitive was renamed: the
	// old name is gone and is now one of the new unit primitive's aliases.
	RenamedFrom string        `json:"renamed_from,omitempty"`
	Fields      []FieldChange `json:"fields"`
}

// FieldChange is one field of a unit primitive that differs. Scalar fields
// set Old and New; list fields set Added and Removed (elements).
type FieldChange struct {
	Field   string   `json:"field"`
	Old     string   `json:"old,omitempty"`
	New     string   `json:"new,omitempty"`
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// CutOffMove is a change of a unit primitive's cut-off date (the end of its
// free access). Nil means no cut-off: free for good.
type CutOffMove struct {
	Name string     `json:"name"`
	Old  *time.Time `json:"old"`
	New  *time.Time `json:"new"`
}

// Kind says in one word how the cut-off moved: "set" (a free unit primitive
// gets a cut-off), "lifted" (the cut-off is gone: free for good), "earlier"
// or "later".
func (m CutOffMove) Kind() string {
	switch {
	case m.Old == nil:
		return "set"
	case m.New == nil:
		return "lifted"
	case m.New.Before(*m.Old):
		return "earlier"
	default:
		return "later"
	}
}

// AudienceMove is a backend whose token audience (jwt_aud) changed: tokens
// minted for the old audience stop working against it.
type AudienceMove struct {
	Backend string `json:"backend"`
	Old     string `json:"old"`
	New     string `json:"new"`
}

// ServiceChange is a (legacy) service whose list of unit primitives changed.
type ServiceChange struct {
	Name    string   `json:"name"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// Empty reports whether the two catalogs agree on everything the diff
// compares.
func (d *Diff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0 &&
		d.AddOns.Empty() && d.LicenseTypes.Empty() && d.Backends.Empty() &&
		len(d.Audiences) == 0 && d.Services.Empty() && len(d.ServiceUPs) == 0
}

// Compare returns what changed from old to new. A unit primitive that
// disappears while its name becomes an alias of a new one is reported as a
// rename (one Changed entry with RenamedFrom), not as a removal and an
// addition.
func Compare(old, new *Catalog) *Diff {
	d := &Diff{Old: old.Source, New: new.Source}
	added := missingFrom(new.UnitPrimitives, old.UnitPrimitives)
	removed := missingFrom(old.UnitPrimitives, new.UnitPrimitives)

	renamedTo := map[string]string{} // new name -> old name
	for _, r := range removed {
		for _, a := range added {
			if _, taken := renamedTo[a]; !taken && slices.Contains(new.UnitPrimitives[a].AliasNames, r) {
				renamedTo[a] = r
				break
			}
		}
	}
	for _, a := range added {
		if _, ok := renamedTo[a]; !ok {
			d.Added = append(d.Added, a)
		}
	}
	renamedFrom := map[string]bool{}
	for _, r := range renamedTo {
		renamedFrom[r] = true
	}
	for _, r := range removed {
		if !renamedFrom[r] {
			d.Removed = append(d.Removed, r)
		}
	}

	for _, name := range new.UnitPrimitiveNames() {
		oldName := name
		if r, ok := renamedTo[name]; ok {
			oldName = r
		}
		o, ok := old.UnitPrimitives[oldName]
		if !ok {
			continue
		}
		n := new.UnitPrimitives[name]
		fields := compareUP(o, n)
		if len(fields) == 0 && oldName == name {
			continue
		}
		c := UPChange{Name: name, Fields: fields}
		if oldName != name {
			c.RenamedFrom = oldName
		}
		d.Changed = append(d.Changed, c)
		if !sameCutOff(o.CutOffDate, n.CutOffDate) {
			d.CutOffMoves = append(d.CutOffMoves, CutOffMove{Name: name, Old: o.CutOffDate, New: n.CutOffDate})
		}
	}

	d.AddOns = SetDiff{Added: missingFrom(new.AddOns, old.AddOns), Removed: missingFrom(old.AddOns, new.AddOns)}
	d.LicenseTypes = SetDiff{Added: missingFrom(new.LicenseTypes, old.LicenseTypes), Removed: missingFrom(old.LicenseTypes, new.LicenseTypes)}
	d.Backends = SetDiff{Added: missingFrom(new.BackendServices, old.BackendServices), Removed: missingFrom(old.BackendServices, new.BackendServices)}
	for _, name := range sortedKeys(new.BackendServices) {
		if o, ok := old.BackendServices[name]; ok && o.JWTAud != new.BackendServices[name].JWTAud {
			d.Audiences = append(d.Audiences, AudienceMove{Backend: name, Old: o.JWTAud, New: new.BackendServices[name].JWTAud})
		}
	}
	d.Services = SetDiff{Added: missingFrom(new.Services, old.Services), Removed: missingFrom(old.Services, new.Services)}
	for _, name := range sortedKeys(new.Services) {
		o, ok := old.Services[name]
		if !ok {
			continue
		}
		add, rem := listDelta(o.UnitPrimitives, new.Services[name].UnitPrimitives)
		if len(add) > 0 || len(rem) > 0 {
			d.ServiceUPs = append(d.ServiceUPs, ServiceChange{Name: name, Added: add, Removed: rem})
		}
	}
	d.normalise()
	return d
}

// normalise turns nil lists into empty ones so the JSON form always has
// every key as a list.
func (d *Diff) normalise() {
	for _, l := range []*[]string{&d.Added, &d.Removed, &d.AddOns.Added, &d.AddOns.Removed,
		&d.LicenseTypes.Added, &d.LicenseTypes.Removed, &d.Backends.Added, &d.Backends.Removed,
		&d.Services.Added, &d.Services.Removed} {
		if *l == nil {
			*l = []string{}
		}
	}
	if d.Changed == nil {
		d.Changed = []UPChange{}
	}
	if d.Audiences == nil {
		d.Audiences = []AudienceMove{}
	}
	if d.CutOffMoves == nil {
		d.CutOffMoves = []CutOffMove{}
	}
	if d.ServiceUPs == nil {
		d.ServiceUPs = []ServiceChange{}
	}
}

// compareUP lists the fields of a unit primitive that differ, in the order
// the catalog documents them.
func compareUP(o, n *UnitPrimitive) []FieldChange {
	var out []FieldChange
	scalar := func(field, a, b string) {
		if a != b {
			out = append(out, FieldChange{Field: field, Old: a, New: b})
		}
	}
	list := func(field string, a, b []string) {
		if add, rem := listDelta(a, b); len(add) > 0 || len(rem) > 0 {
			out = append(out, FieldChange{Field: field, Added: add, Removed: rem})
		}
	}
	scalar("description", o.Description, n.Description)
	scalar("group", o.Group, n.Group)
	scalar("feature_category", o.FeatureCategory, n.FeatureCategory)
	scalar("documentation_url", o.DocumentationURL, n.DocumentationURL)
	scalar("milestone", o.Milestone, n.Milestone)
	scalar("introduced_by_url", o.IntroducedByURL, n.IntroducedByURL)
	scalar("unit_primitive_issue_url", o.UnitPrimitiveIssueURL, n.UnitPrimitiveIssueURL)
	scalar("deprecated_by_url", o.DeprecatedByURL, n.DeprecatedByURL)
	scalar("deprecation_message", o.DeprecationMessage, n.DeprecationMessage)
	scalar("cut_off_date", FormatDate(o.CutOffDate), FormatDate(n.CutOffDate))
	scalar("min_gitlab_version", o.MinGitLabVersion, n.MinGitLabVersion)
	scalar("min_gitlab_version_for_free_access", o.MinGitLabVersionForFreeAccess, n.MinGitLabVersionForFreeAccess)
	list("license_types", o.LicenseTypes, n.LicenseTypes)
	list("backend_services", o.BackendServices, n.BackendServices)
	list("add_ons", o.AddOns, n.AddOns)
	list("alias_names", o.AliasNames, n.AliasNames)
	return out
}

// FormatDate formats a cut-off date as RFC 3339 in UTC, or "" for none.
func FormatDate(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func sameCutOff(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// missingFrom returns the keys of a that b lacks, sorted.
func missingFrom[V, W any](a map[string]V, b map[string]W) []string {
	var out []string
	for _, k := range sortedKeys(a) {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// listDelta returns the elements of b not in a (added) and of a not in b
// (removed), each sorted.
func listDelta(a, b []string) (added, removed []string) {
	for _, x := range sortedUnique(b) {
		if !slices.Contains(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range sortedUnique(a) {
		if !slices.Contains(b, x) {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// String is the diff as short text, one line a change, for logs and
// messages; `ccauthz catalog diff` prints a fuller form.
func (d *Diff) String() string {
	if d.Empty() {
		return "no differences"
	}
	var b strings.Builder
	for _, n := range d.Added {
		b.WriteString("+ " + n + "\n")
	}
	for _, n := range d.Removed {
		b.WriteString("- " + n + "\n")
	}
	for _, c := range d.Changed {
		b.WriteString("~ " + c.Name + "\n")
	}
	return b.String()
}
