package catalog

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	legacyTopFields     = []string{"services"}
	legacyServiceFields = []string{
		"backend", "cut_off_date", "min_gitlab_version",
		"min_gitlab_version_for_free_access", "min_gitlab_version_for_beta",
		"bundled_with", "license_types",
	}
	legacyBundleFields = []string{"unit_primitives"}
)

// legacyUP accumulates one unit primitive over every service and bundle that
// lists it.
type legacyUP struct {
	up      *UnitPrimitive
	anyFree bool       // listed by at least one service without a cut-off date
	latest  *time.Time // latest cut-off date of the services that have one
}

// legacyLoader normalises the legacy access_data.yml into the catalog model:
//   - a service's `backend` is the audience; the backend's catalog name is
//     AudienceToBackendName(audience);
//   - bundle names starting with "_" (`_irrelevant`) are placeholders that mean
//     "no add-on checked while there is no cut-off"; they grant no add-on;
//   - a unit primitive listed by several services or bundles merges: add-ons,
//     license types and backends are unions; it stays free while any of its
//     services is free (no cut-off date), else the latest cut-off applies; the
//     minimum versions are the lowest given;
//   - each service becomes a Service whose unit primitives are the union of its
//     bundles and whose basic unit primitive is the first one listed;
//   - min_gitlab_version_for_beta is the older name of
//     min_gitlab_version_for_free_access.
type legacyLoader struct {
	r        NodeReader
	c        *Catalog
	ups      map[string]*legacyUP
	order    []string
	audience map[string]string // backend name -> the audience that produced it
}

func loadLegacy(r NodeReader, top *yaml.Node, label string) *Catalog {
	l := &legacyLoader{r: r, c: New(ShapeLegacy, label), ups: map[string]*legacyUP{}, audience: map[string]string{}}
	f := r.Fields(top, "legacy catalog", legacyTopFields, legacyTopFields)
	services := f["services"]
	if services == nil || isNull(services) {
		return l.c
	}
	if services.Kind != yaml.MappingNode {
		r.Errorf(services, "field %q must be a mapping of service names to services, got %s", "services", kindName(services))
		return l.c
	}
	eachPair(r, services, "service", func(k, v *yaml.Node) {
		l.service(k, v)
	})
	for _, name := range l.order {
		lu := l.ups[name]
		if !lu.anyFree && lu.latest != nil {
			t := *lu.latest
			lu.up.CutOffDate = &t
		}
		// Every legacy service has a backend (or was reported for lacking
		// one), so only the cut-off rule is left to check.
		checkCutOff(r.Problems, lu.up, lu.up.Pos)
		l.c.UnitPrimitives[name] = lu.up
	}
	return l.c
}

// eachPair walks a mapping whose keys are names, reporting non-scalar and
// duplicate keys (yaml.Node keeps both; GitLab's loader would silently keep
// the last one).
func eachPair(r NodeReader, m *yaml.Node, what string, fn func(k, v *yaml.Node)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.Errorf(k, "%s name must be a string, got %s", what, kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			r.Errorf(k, "duplicate %s name %q (first defined at %s)", what, k.Value, r.Pos(first))
			continue
		}
		seen[k.Value] = k
		fn(k, v)
	}
}

func (l *legacyLoader) service(k, v *yaml.Node) {
	r := l.r
	name := k.Value
	checkSnakeCase(r, k, name)
	f := r.Fields(v, "service", legacyServiceFields, []string{"backend", "bundled_with"})
	if f == nil {
		return
	}
	svc := &Service{Name: name, Pos: r.Pos(k)}

	backendName := ""
	if aud := optString(r, f, "backend", true); aud != "" {
		backendName = l.backend(f["backend"], aud)
	}
	cutOff := dateField(r, f["cut_off_date"], "cut_off_date")
	minVersion := versionField(r, f["min_gitlab_version"], "min_gitlab_version")
	minFree := versionField(r, f["min_gitlab_version_for_free_access"], "min_gitlab_version_for_free_access")
	if beta := f["min_gitlab_version_for_beta"]; beta != nil {
		if f["min_gitlab_version_for_free_access"] != nil {
			r.Errorf(beta, "fields %q and %q are the same setting (the first is the older name): give only %q",
				"min_gitlab_version_for_beta", "min_gitlab_version_for_free_access", "min_gitlab_version_for_free_access")
		} else {
			minFree = versionField(r, beta, "min_gitlab_version_for_beta")
		}
	}
	licenses := refList(r, f["license_types"], "license_types")
	for _, lt := range licenses {
		checkSnakeCaseAt(r.Problems, lt.pos, lt.name)
		if _, ok := l.c.LicenseTypes[lt.name]; !ok {
			l.c.LicenseTypes[lt.name] = &LicenseType{Name: lt.name, Pos: lt.pos}
		}
	}

	bundles := f["bundled_with"]
	if bundles == nil || isNull(bundles) {
		return
	}
	if bundles.Kind != yaml.MappingNode {
		r.Errorf(bundles, "field %q must be a mapping of add-on names to bundles, got %s", "bundled_with", kindName(bundles))
		return
	}
	brokenBundles := 0
	eachPair(r, bundles, "add-on", func(bk, bv *yaml.Node) {
		addOn := bk.Value
		placeholder := strings.HasPrefix(addOn, "_")
		if !placeholder {
			checkSnakeCase(r, bk, addOn)
			if _, ok := l.c.AddOns[addOn]; !ok {
				l.c.AddOns[addOn] = &AddOn{Name: addOn, Pos: r.Pos(bk)}
			}
		}
		bf := r.Fields(bv, "bundle", legacyBundleFields, legacyBundleFields)
		if list := bf["unit_primitives"]; list == nil || list.Kind != yaml.SequenceNode {
			brokenBundles++ // already reported
		}
		for _, u := range refList(r, bf["unit_primitives"], "unit_primitives") {
			// A badly spelt name is reported but still merged, so that it
			// does not also make its service look empty.
			checkSnakeCaseAt(r.Problems, u.pos, u.name)
			lu := l.unitPrimitive(u)
			if backendName != "" {
				lu.up.BackendServices = append(lu.up.BackendServices, backendName)
			}
			if !placeholder {
				lu.up.AddOns = append(lu.up.AddOns, addOn)
			}
			lu.up.LicenseTypes = append(lu.up.LicenseTypes, names(licenses)...)
			if cutOff == nil {
				lu.anyFree = true
			} else if lu.latest == nil || cutOff.After(*lu.latest) {
				t := *cutOff
				lu.latest = &t
			}
			lu.up.MinGitLabVersion = lowerVersion(lu.up.MinGitLabVersion, minVersion)
			lu.up.MinGitLabVersionForFreeAccess = lowerVersion(lu.up.MinGitLabVersionForFreeAccess, minFree)
			if svc.BasicUnitPrimitive == "" {
				svc.BasicUnitPrimitive = u.name
			}
			svc.UnitPrimitives = append(svc.UnitPrimitives, u.name)
		}
	})
	if len(svc.UnitPrimitives) == 0 && brokenBundles == 0 {
		r.Errorf(bundles, "service %q bundles no unit primitives", name)
	}
	l.c.Services[name] = svc
}

// backend registers the backend an audience names and returns its catalog
// name ("" when the audience cannot give one).
func (l *legacyLoader) backend(n *yaml.Node, aud string) string {
	name := AudienceToBackendName(aud)
	if !IsSnakeCase(name) {
		l.r.Errorf(n, "backend %q does not give a snake_case backend service name (got %q)", aud, name)
		return ""
	}
	if other, ok := l.audience[name]; ok && other != aud {
		l.r.Errorf(n, "backends %q and %q both give the backend service name %q", other, aud, name)
		return ""
	}
	if _, ok := l.c.BackendServices[name]; !ok {
		l.audience[name] = aud
		l.c.BackendServices[name] = &BackendService{Name: name, JWTAud: aud, Pos: l.r.Pos(n)}
	}
	return name
}

func (l *legacyLoader) unitPrimitive(u ref) *legacyUP {
	if lu, ok := l.ups[u.name]; ok {
		return lu
	}
	lu := &legacyUP{up: &UnitPrimitive{Name: u.name, Pos: u.pos}}
	l.ups[u.name] = lu
	l.order = append(l.order, u.name)
	return lu
}

// lowerVersion returns the lower of two versions, ignoring empty ones.
func lowerVersion(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case CompareVersions(b, a) < 0:
		return b
	}
	return a
}
