package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Shape names the published form a catalog was read from.
type Shape string

// The three shapes GitLab publishes the catalog in.
const (
	ShapeLayout Shape = "layout" // gitlab-cloud-connector config/ directory of YAML files
	ShapeLegacy Shape = "legacy" // single access_data.yml
	ShapeJSON   Shape = "json"   // JSON payload an instance receives on catalog sync
)

// Position is where an entity or a problem sits in its source file. Line and Col
// are 1-based; zero means unknown.
type Position struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// String formats the position as file:line:col, dropping unknown parts.
func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// UnitPrimitive is one feature a token scope can grant.
type UnitPrimitive struct {
	Name             string `json:"name"`
	Description      string `json:"description,omitempty"`
	Group            string `json:"group,omitempty"`
	FeatureCategory  string `json:"feature_category,omitempty"`
	DocumentationURL string `json:"documentation_url,omitempty"`

	Milestone             string `json:"milestone,omitempty"`
	IntroducedByURL       string `json:"introduced_by_url,omitempty"`
	UnitPrimitiveIssueURL string `json:"unit_primitive_issue_url,omitempty"`
	DeprecatedByURL       string `json:"deprecated_by_url,omitempty"`
	DeprecationMessage    string `json:"deprecation_message,omitempty"`

	// CutOffDate is when free access ends; nil means the unit primitive stays free.
	CutOffDate                    *time.Time `json:"cut_off_date,omitempty"`
	MinGitLabVersion              string     `json:"min_gitlab_version,omitempty"`
	MinGitLabVersionForFreeAccess string     `json:"min_gitlab_version_for_free_access,omitempty"`

	// Access fields, each sorted and free of duplicates.
	LicenseTypes    []string `json:"license_types,omitempty"`
	BackendServices []string `json:"backend_services,omitempty"`
	AddOns          []string `json:"add_ons,omitempty"`
	AliasNames      []string `json:"alias_names,omitempty"`

	Pos Position `json:"-"`
}

// FreeAt reports whether the unit primitive is in free access at t: it has no
// cut-off date, or t is before it (GitLab's `cut_off_date.nil? || future?`).
func (u *UnitPrimitive) FreeAt(t time.Time) bool {
	return u.CutOffDate == nil || t.Before(*u.CutOffDate)
}

// Deprecated reports whether the unit primitive carries deprecation data.
func (u *UnitPrimitive) Deprecated() bool {
	return u.DeprecatedByURL != "" || u.DeprecationMessage != ""
}

// BackendService is a backend that serves unit primitives; JWTAud is the token
// audience it accepts.
type BackendService struct {
	Name        string   `json:"name"`
	ProjectURL  string   `json:"project_url,omitempty"`
	Group       string   `json:"group,omitempty"`
	JWTAud      string   `json:"jwt_aud"`
	Description string   `json:"description,omitempty"`
	Pos         Position `json:"-"`
}

// AddOn is a purchasable add-on (duo_pro, duo_enterprise, ...).
type AddOn struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Pos         Position `json:"-"`
}

// LicenseType is a GitLab license tier (premium, ultimate, ...).
type LicenseType struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Pos         Position `json:"-"`
}

// Service is the legacy, backward-compatible grouping of unit primitives.
type Service struct {
	Name               string   `json:"name"`
	BasicUnitPrimitive string   `json:"basic_unit_primitive,omitempty"`
	GitLabRealm        []string `json:"gitlab_realm,omitempty"`
	Description        string   `json:"description,omitempty"`
	UnitPrimitives     []string `json:"unit_primitives"`
	Pos                Position `json:"-"`
}

// Catalog is a loaded, validated catalog. It is immutable after loading.
type Catalog struct {
	Shape           Shape                      `json:"shape"`
	Source          string                     `json:"source"`
	UnitPrimitives  map[string]*UnitPrimitive  `json:"unit_primitives"`
	BackendServices map[string]*BackendService `json:"backend_services"`
	AddOns          map[string]*AddOn          `json:"add_ons"`
	LicenseTypes    map[string]*LicenseType    `json:"license_types"`
	Services        map[string]*Service        `json:"services,omitempty"`

	aliases map[string]string // alias name -> canonical unit primitive name
	digest  string
}

// New returns an empty catalog of the given shape, ready for a loader to fill
// and Seal.
func New(shape Shape, source string) *Catalog {
	return &Catalog{
		Shape:           shape,
		Source:          source,
		UnitPrimitives:  map[string]*UnitPrimitive{},
		BackendServices: map[string]*BackendService{},
		AddOns:          map[string]*AddOn{},
		LicenseTypes:    map[string]*LicenseType{},
		Services:        map[string]*Service{},
	}
}

// Seal normalises the catalog (sorted, deduplicated lists), builds the alias
// index and computes the digest. Loaders call it once, after validation.
func (c *Catalog) Seal() {
	c.aliases = map[string]string{}
	for _, u := range c.UnitPrimitives {
		if u.CutOffDate != nil {
			// The same instant must give the same digest whichever zone
			// offset the source spelled it with.
			t := u.CutOffDate.UTC()
			u.CutOffDate = &t
		}
		u.LicenseTypes = sortedUnique(u.LicenseTypes)
		u.BackendServices = sortedUnique(u.BackendServices)
		u.AddOns = sortedUnique(u.AddOns)
		u.AliasNames = sortedUnique(u.AliasNames)
		for _, a := range u.AliasNames {
			c.aliases[a] = u.Name
		}
	}
	for _, s := range c.Services {
		s.UnitPrimitives = sortedUnique(s.UnitPrimitives)
		s.GitLabRealm = sortedUnique(s.GitLabRealm)
	}
	// encoding/json sorts map keys, so this is a stable content hash.
	b, err := json.Marshal(struct {
		U map[string]*UnitPrimitive  `json:"u"`
		B map[string]*BackendService `json:"b"`
		A map[string]*AddOn          `json:"a"`
		L map[string]*LicenseType    `json:"l"`
		S map[string]*Service        `json:"s"`
	}{c.UnitPrimitives, c.BackendServices, c.AddOns, c.LicenseTypes, c.Services})
	if err != nil {
		// Only plain strings, slices and times are marshalled; this cannot fail.
		panic(fmt.Sprintf("catalog: digest: %v", err))
	}
	sum := sha256.Sum256(b)
	c.digest = hex.EncodeToString(sum[:])
}

// Digest is the SHA-256 of the catalog's normalised content: two catalogs with
// the same unit primitives, backends, add-ons, license types and services have
// the same digest whatever shape or file layout they came from.
func (c *Catalog) Digest() string { return c.digest }

// Lookup finds a unit primitive by name or alias name.
func (c *Catalog) Lookup(name string) (*UnitPrimitive, bool) {
	if u, ok := c.UnitPrimitives[name]; ok {
		return u, true
	}
	if canonical, ok := c.aliases[name]; ok {
		return c.UnitPrimitives[canonical], true
	}
	return nil, false
}

// Backend finds a backend service by catalog name or by its jwt_aud.
func (c *Catalog) Backend(nameOrAud string) (*BackendService, bool) {
	if b, ok := c.BackendServices[nameOrAud]; ok {
		return b, true
	}
	for _, b := range c.sortedBackends() {
		if b.JWTAud == nameOrAud {
			return b, true
		}
	}
	return nil, false
}

// UnitPrimitiveNames returns every unit primitive name, sorted.
func (c *Catalog) UnitPrimitiveNames() []string {
	return sortedKeys(c.UnitPrimitives)
}

// UnitPrimitivesOfBackend returns the unit primitives served by the backend
// (named by catalog name or jwt_aud), sorted by name.
func (c *Catalog) UnitPrimitivesOfBackend(nameOrAud string) []*UnitPrimitive {
	b, ok := c.Backend(nameOrAud)
	if !ok {
		return nil
	}
	var out []*UnitPrimitive
	for _, name := range c.UnitPrimitiveNames() {
		u := c.UnitPrimitives[name]
		if slices.Contains(u.BackendServices, b.Name) {
			out = append(out, u)
		}
	}
	return out
}

// UnitPrimitivesOfAddOn returns the unit primitives bundled with the add-on,
// sorted by name.
func (c *Catalog) UnitPrimitivesOfAddOn(addOn string) []*UnitPrimitive {
	var out []*UnitPrimitive
	for _, name := range c.UnitPrimitiveNames() {
		u := c.UnitPrimitives[name]
		if slices.Contains(u.AddOns, addOn) {
			out = append(out, u)
		}
	}
	return out
}

// Audiences returns the sorted jwt_aud values of the backends that serve the
// unit primitive (by name or alias); nil if it is unknown.
func (c *Catalog) Audiences(up string) []string {
	u, ok := c.Lookup(up)
	if !ok {
		return nil
	}
	var auds []string
	for _, name := range u.BackendServices {
		if b, ok := c.BackendServices[name]; ok {
			auds = append(auds, b.JWTAud)
		}
	}
	return sortedUnique(auds)
}

// Deprecated returns the deprecated unit primitives, sorted by name.
func (c *Catalog) Deprecated() []*UnitPrimitive {
	var out []*UnitPrimitive
	for _, name := range c.UnitPrimitiveNames() {
		if u := c.UnitPrimitives[name]; u.Deprecated() {
			out = append(out, u)
		}
	}
	return out
}

// Grant is what an issuer puts in a token: scopes and the audiences that go
// with them.
type Grant struct {
	Scopes    []string `json:"scopes"`
	Audiences []string `json:"audiences"`
}

// Grant computes the scopes an issuer grants to a holder of addOns at time t,
// as GitLab's token issuer does: every unit primitive in free access at t, plus
// every unit primitive bundled with at least one held add-on; the audiences are
// the jwt_aud of those unit primitives' backends. Unknown add-on names grant
// nothing (the issuer would not know them either).
func (c *Catalog) Grant(addOns []string, t time.Time) Grant {
	var g Grant
	for _, name := range c.UnitPrimitiveNames() {
		u := c.UnitPrimitives[name]
		if !u.FreeAt(t) && !intersects(u.AddOns, addOns) {
			continue
		}
		g.Scopes = append(g.Scopes, u.Name)
		g.Audiences = append(g.Audiences, c.Audiences(u.Name)...)
	}
	g.Audiences = sortedUnique(g.Audiences)
	if g.Scopes == nil {
		g.Scopes = []string{}
	}
	if g.Audiences == nil {
		g.Audiences = []string{}
	}
	return g
}

func (c *Catalog) sortedBackends() []*BackendService {
	out := make([]*BackendService, 0, len(c.BackendServices))
	for _, k := range sortedKeys(c.BackendServices) {
		out = append(out, c.BackendServices[k])
	}
	return out
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	sort.Strings(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AudienceToBackendName derives a backend's catalog name from a legacy
// `backend` audience: the `gitlab-` prefix is dropped and dashes become
// underscores (gitlab-ai-gateway -> ai_gateway), matching the names the
// gitlab-cloud-connector layout uses.
func AudienceToBackendName(aud string) string {
	return strings.ReplaceAll(strings.TrimPrefix(aud, "gitlab-"), "-", "_")
}
