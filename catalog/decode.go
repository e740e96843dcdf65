package catalog

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The field sets of each entity. The layout and the JSON payload share them;
// only the required sets differ (the JSON payload does not carry the
// documentation fields GitLab publishes in the layout).
var (
	unitPrimitiveFields = []string{
		"name", "description", "group", "feature_category", "documentation_url",
		"milestone", "introduced_by_url", "unit_primitive_issue_url",
		"deprecated_by_url", "deprecation_message",
		"cut_off_date", "min_gitlab_version", "min_gitlab_version_for_free_access",
		"license_types", "backend_services", "add_ons", "alias_names",
	}
	backendServiceFields = []string{"name", "project_url", "group", "jwt_aud", "description"}
	addOnFields          = []string{"name", "description"}
	licenseTypeFields    = []string{"name", "description"}
	serviceFields        = []string{"name", "basic_unit_primitive", "gitlab_realm", "description", "unit_primitives"}
)

// requiredFields says which fields an entity must have in one shape.
type requiredFields struct {
	unitPrimitive, backendService, addOn, licenseType, service []string
}

var (
	layoutRequired = requiredFields{
		unitPrimitive:  []string{"name", "description", "group", "feature_category", "documentation_url"},
		backendService: []string{"name", "project_url", "group", "jwt_aud"},
		addOn:          []string{"name"},
		licenseType:    []string{"name"},
		service:        []string{"name", "unit_primitives"},
	}
	jsonRequired = requiredFields{
		unitPrimitive:  []string{"name"},
		backendService: []string{"name", "jwt_aud"},
		addOn:          []string{"name"},
		licenseType:    []string{"name"},
		service:        []string{"name", "unit_primitives"},
	}
)

// gitlabRealms are the values a service's gitlab_realm may list.
var gitlabRealms = []string{"gitlab-com", "self-managed"}

var (
	snakeCaseRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	versionRe   = regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`)
)

// IsSnakeCase reports whether name is a valid catalog name: a lowercase
// letter followed by lowercase letters, digits and underscores.
func IsSnakeCase(name string) bool { return snakeCaseRe.MatchString(name) }

// IsVersion reports whether v is a GitLab version such as "17.8" or "17.8.1".
func IsVersion(v string) bool { return versionRe.MatchString(v) }

// dateLayouts are the spellings of cut_off_date found in GitLab's catalogs:
// the layout's RFC 3339, the legacy file's "2024-10-17 00:00:00 UTC", Ruby's
// Time#to_s with a numeric offset, and a bare date.
var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05 UTC",
	"2006-01-02 15:04:05 -07:00",
	"2006-01-02",
}

// ParseDate parses a catalog date in any of the accepted spellings
// (2024-10-17T00:00:00+00:00, "2024-10-17 00:00:00 UTC",
// "2024-10-17 00:00:00 +00:00", 2024-10-17) and returns it in UTC.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date such as 2024-10-17T00:00:00+00:00, \"2024-10-17 00:00:00 UTC\" or 2024-10-17", s)
}

// CompareVersions compares two versions accepted by IsVersion numerically
// (17.10 > 17.9); a missing patch level counts as 0.
func CompareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := range 3 {
		switch {
		case pa[i] < pb[i]:
			return -1
		case pa[i] > pb[i]:
			return 1
		}
	}
	return 0
}

func versionParts(v string) [3]int {
	var out [3]int
	for i, p := range strings.SplitN(v, ".", 3) {
		n, _ := strconv.Atoi(p)
		out[i] = n
	}
	return out
}

// ref is a name written somewhere in the input, kept with its position so a
// dangling reference can be reported where it is written.
type ref struct {
	name string
	pos  Position
}

// optString decodes an optional string field: absent or null is "".
// required fields must also be non-empty (Fields has already reported them
// when absent).
func optString(r NodeReader, f map[string]*yaml.Node, field string, required bool) string {
	n := f[field]
	if n == nil || isNull(n) {
		return ""
	}
	v, ok := r.String(n, field)
	if ok && required && strings.TrimSpace(v) == "" {
		r.Errorf(n, "field %q must not be empty", field)
	}
	return v
}

// nameField decodes the name field and checks it is snake_case. ok is false
// when there is no usable name (missing, not a string, empty).
func nameField(r NodeReader, f map[string]*yaml.Node) (ref, bool) {
	n := f["name"]
	if n == nil || isNull(n) {
		return ref{}, false
	}
	v, ok := r.String(n, "name")
	if !ok {
		return ref{}, false
	}
	if v == "" {
		r.Errorf(n, "field %q must not be empty", "name")
		return ref{}, false
	}
	checkSnakeCase(r, n, v)
	return ref{name: v, pos: r.Pos(n)}, true
}

func checkSnakeCase(r NodeReader, n *yaml.Node, name string) {
	checkSnakeCaseAt(r.Problems, r.Pos(n), name)
}

func checkSnakeCaseAt(ps *Problems, pos Position, name string) {
	if !IsSnakeCase(name) {
		ps.Add(pos, "name %q is not snake_case (a lowercase letter, then lowercase letters, digits and underscores)", name)
	}
}

// refList decodes a list of names, reporting items listed more than once.
func refList(r NodeReader, n *yaml.Node, field string) []ref {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "field %q must be a list of strings, got %s", field, kindName(n))
		return nil
	}
	var out []ref
	seen := map[string]bool{}
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			r.Errorf(item, "field %q must be a list of strings, got an item that is %s", field, kindName(item))
			continue
		}
		if seen[item.Value] {
			r.Errorf(item, "%q is listed more than once in %q", item.Value, field)
			continue
		}
		seen[item.Value] = true
		out = append(out, ref{name: item.Value, pos: r.Pos(item)})
	}
	return out
}

func names(refs []ref) []string {
	if len(refs) == 0 {
		return nil
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.name
	}
	return out
}

// dateField decodes an optional date; null means absent.
func dateField(r NodeReader, n *yaml.Node, field string) *time.Time {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		r.Errorf(n, "field %q must be a date, got %s", field, kindName(n))
		return nil
	}
	t, err := ParseDate(n.Value)
	if err != nil {
		r.Errorf(n, "field %q must be a date such as 2024-10-17T00:00:00+00:00, \"2024-10-17 00:00:00 UTC\" or 2024-10-17, got %q", field, n.Value)
		return nil
	}
	return &t
}

// versionField decodes an optional version. YAML reads an unquoted 16.8 as a
// float, so the node's text is used, never a decoded number.
func versionField(r NodeReader, n *yaml.Node, field string) string {
	if n == nil || isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || !IsVersion(n.Value) {
		r.Errorf(n, "field %q must be a version such as \"17.8\" or \"17.8.1\", got %s", field, kindName(n))
		return ""
	}
	return n.Value
}

// upEntry is a decoded unit primitive with the positions of what it refers to.
type upEntry struct {
	up        *UnitPrimitive
	name      ref
	hasName   bool
	addOns    []ref
	licenses  []ref
	backends  []ref
	aliases   []ref
	cutOffPos Position
	// backendsInvalid is set when backend_services was given but could not
	// be read (already reported), so its absence is not reported again.
	backendsInvalid bool
}

func decodeUnitPrimitive(r NodeReader, n *yaml.Node, required []string) *upEntry {
	f := r.Fields(n, "unit primitive", unitPrimitiveFields, required)
	if f == nil {
		return nil
	}
	req := func(field string) bool { return slices.Contains(required, field) }
	e := &upEntry{up: &UnitPrimitive{Pos: r.Pos(n)}}
	e.name, e.hasName = nameField(r, f)
	u := e.up
	u.Name = e.name.name
	u.Description = optString(r, f, "description", req("description"))
	u.Group = optString(r, f, "group", req("group"))
	u.FeatureCategory = optString(r, f, "feature_category", req("feature_category"))
	u.DocumentationURL = optString(r, f, "documentation_url", req("documentation_url"))
	u.Milestone = optString(r, f, "milestone", false)
	u.IntroducedByURL = optString(r, f, "introduced_by_url", false)
	u.UnitPrimitiveIssueURL = optString(r, f, "unit_primitive_issue_url", false)
	u.DeprecatedByURL = optString(r, f, "deprecated_by_url", false)
	u.DeprecationMessage = optString(r, f, "deprecation_message", false)
	u.CutOffDate = dateField(r, f["cut_off_date"], "cut_off_date")
	if n := f["cut_off_date"]; n != nil {
		e.cutOffPos = r.Pos(n)
	}
	u.MinGitLabVersion = versionField(r, f["min_gitlab_version"], "min_gitlab_version")
	u.MinGitLabVersionForFreeAccess = versionField(r, f["min_gitlab_version_for_free_access"], "min_gitlab_version_for_free_access")
	e.licenses = refList(r, f["license_types"], "license_types")
	e.backends = refList(r, f["backend_services"], "backend_services")
	if bn := f["backend_services"]; bn != nil && bn.Kind != yaml.SequenceNode && !isNull(bn) {
		e.backendsInvalid = true
	}
	e.addOns = refList(r, f["add_ons"], "add_ons")
	e.aliases = refList(r, f["alias_names"], "alias_names")
	u.LicenseTypes = names(e.licenses)
	u.BackendServices = names(e.backends)
	u.AddOns = names(e.addOns)
	u.AliasNames = names(e.aliases)
	return e
}

type backendEntry struct {
	b       *BackendService
	name    ref
	hasName bool
}

func decodeBackendService(r NodeReader, n *yaml.Node, required []string) *backendEntry {
	f := r.Fields(n, "backend service", backendServiceFields, required)
	if f == nil {
		return nil
	}
	req := func(field string) bool { return slices.Contains(required, field) }
	e := &backendEntry{b: &BackendService{Pos: r.Pos(n)}}
	e.name, e.hasName = nameField(r, f)
	e.b.Name = e.name.name
	e.b.ProjectURL = optString(r, f, "project_url", req("project_url"))
	e.b.Group = optString(r, f, "group", req("group"))
	e.b.JWTAud = optString(r, f, "jwt_aud", true)
	e.b.Description = optString(r, f, "description", false)
	return e
}

// simpleEntry is an add-on or a license type: a name and a description.
type simpleEntry struct {
	name        ref
	hasName     bool
	description string
	pos         Position
}

func decodeSimple(r NodeReader, n *yaml.Node, what string, known, required []string) *simpleEntry {
	f := r.Fields(n, what, known, required)
	if f == nil {
		return nil
	}
	e := &simpleEntry{pos: r.Pos(n)}
	e.name, e.hasName = nameField(r, f)
	e.description = optString(r, f, "description", false)
	return e
}

type serviceEntry struct {
	s       *Service
	name    ref
	hasName bool
	ups     []ref
	basic   *ref
}

func decodeService(r NodeReader, n *yaml.Node, required []string) *serviceEntry {
	f := r.Fields(n, "service", serviceFields, required)
	if f == nil {
		return nil
	}
	e := &serviceEntry{s: &Service{Pos: r.Pos(n)}}
	e.name, e.hasName = nameField(r, f)
	e.s.Name = e.name.name
	e.s.Description = optString(r, f, "description", false)
	for _, realm := range refList(r, f["gitlab_realm"], "gitlab_realm") {
		if !slices.Contains(gitlabRealms, realm.name) {
			r.Problems.Add(realm.pos, "gitlab_realm %q is not one of %q, %q", realm.name, gitlabRealms[0], gitlabRealms[1])
			continue
		}
		e.s.GitLabRealm = append(e.s.GitLabRealm, realm.name)
	}
	e.ups = refList(r, f["unit_primitives"], "unit_primitives")
	if list := f["unit_primitives"]; list != nil && list.Kind == yaml.SequenceNode && len(list.Content) == 0 {
		r.Errorf(list, "service %q lists no unit primitives", e.s.Name)
	}
	e.s.UnitPrimitives = names(e.ups)
	if bn := f["basic_unit_primitive"]; bn != nil && !isNull(bn) {
		if v, ok := r.String(bn, "basic_unit_primitive"); ok {
			e.basic = &ref{name: v, pos: r.Pos(bn)}
			e.s.BasicUnitPrimitive = v
		}
	} else if len(e.ups) > 0 {
		// GitLab: "If not set, the first unit primitive in the unit_primitives
		// list is used."
		e.s.BasicUnitPrimitive = e.ups[0].name
	}
	return e
}
