package site

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ccauthz/ccauthz/catalog"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// ErrNotFound is returned by Render for a page the directory does not have.
var ErrNotFound = errors.New("site: no such page")

// Mode says where a page is shown: the live server computes the grant
// calculator and the index filters on the server; a static export has no
// server, so its grant calculator runs in the browser.
type Mode int

// The two modes.
const (
	Live Mode = iota
	Static
)

// Site holds the parsed templates; it is safe for concurrent use.
type Site struct {
	pages map[string]*template.Template // by template file name
}

// New parses the embedded templates.
func New() (*Site, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("site: layout: %w", err)
	}
	s := &Site{pages: map[string]*template.Template{}}
	for _, name := range []string{"index.html", "up.html", "addon.html", "backend.html", "grant.html", "diff.html"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("site: %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return s, nil
}

// Assets is the embedded stylesheet and script, rooted so that "site.css"
// is at the top.
func Assets() fs.FS {
	sub, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		panic(fmt.Sprintf("site: embedded assets: %v", err)) // "assets" is a valid path
	}
	return sub
}

// Pages lists the path of every page of a directory, relative to its root
// ("index.html", "up/duo_chat.html", ...), sorted.
func Pages(d *Directory) []string {
	out := []string{"index.html", "grant.html"}
	for _, n := range d.cat.UnitPrimitiveNames() {
		out = append(out, "up/"+n+".html")
	}
	for n := range d.cat.AddOns {
		out = append(out, "add-on/"+n+".html")
	}
	for n := range d.cat.BackendServices {
		out = append(out, "backend/"+n+".html")
	}
	if d.diff != nil {
		out = append(out, "diff.html")
	}
	sort.Strings(out)
	return out
}

// page is what every template receives.
type page struct {
	Root    string // relative path from the page to the directory root: "" or "../"
	Title   string
	Section string // the nav entry to mark current
	Mode    Mode
	Catalog *catalog.Catalog
	Source  string // catalog file name, never a machine path
	HasDiff bool
	Now     time.Time
	Body    any
}

// Render writes the page at rel (a path from Pages) to w. query carries the
// GET form fields of the index filters and the grant calculator (ignored in
// Static mode). A bad form value is shown on the page, not returned.
func (s *Site) Render(w io.Writer, d *Directory, mode Mode, rel string, query url.Values) error {
	p := &page{Mode: mode, Catalog: d.cat, Source: sourceName(d.cat), HasDiff: d.diff != nil, Now: d.now}
	if mode == Static {
		query = nil
	}
	var tmpl string
	dir, name, nested := strings.Cut(rel, "/")
	if nested {
		p.Root = "../"
		if strings.Contains(name, "/") {
			return ErrNotFound
		}
		name = strings.TrimSuffix(name, ".html")
		switch dir {
		case "up":
			u, ok := d.cat.UnitPrimitives[name]
			if !ok {
				return ErrNotFound
			}
			tmpl, p.Title, p.Section, p.Body = "up.html", u.Name, "index", d.upView(u)
		case "add-on":
			a, ok := d.cat.AddOns[name]
			if !ok {
				return ErrNotFound
			}
			tmpl, p.Title, p.Section, p.Body = "addon.html", a.Name, "add-ons", d.addOnView(a)
		case "backend":
			b, ok := d.cat.BackendServices[name]
			if !ok {
				return ErrNotFound
			}
			tmpl, p.Title, p.Section, p.Body = "backend.html", b.Name, "backends", d.backendView(b)
		default:
			return ErrNotFound
		}
	} else {
		switch rel {
		case "", "index.html":
			tmpl, p.Title, p.Section, p.Body = "index.html", "Unit primitives", "index", d.indexView(query)
		case "grant.html":
			tmpl, p.Title, p.Section, p.Body = "grant.html", "Grant calculator", "grant", d.grantView(query, mode)
		case "diff.html":
			if d.diff == nil {
				return ErrNotFound
			}
			// File names only: a page never shows a machine path.
			diff := *d.diff
			diff.Old, diff.New = baseName(diff.Old), baseName(diff.New)
			tmpl, p.Title, p.Section, p.Body = "diff.html", "Catalog diff", "diff", &diff
		default:
			return ErrNotFound
		}
	}
	// Render to a buffer first: a template error must not leave half a page.
	var buf bytes.Buffer
	if err := s.pages[tmpl].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		return fmt.Errorf("site: %s: %w", rel, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// --- view models -----------------------------------------------------------

type upRow struct {
	*catalog.UnitPrimitive
	Statuses []string
	Search   string
	Hidden   bool
}

type option struct {
	Value    string
	Selected bool
}

type indexView struct {
	Rows                                                      []upRow
	Shown                                                     int
	Filter                                                    Filter
	Backends, AddOns, Licenses, Groups, Categories, StatusOpt []option
	BackendList                                               []*catalog.BackendService
	AddOnList                                                 []addOnItem
}

type addOnItem struct {
	*catalog.AddOn
	Count int
}

func (d *Directory) indexView(q url.Values) indexView {
	f := Filter{Query: q.Get("q"), Backend: q.Get("backend"), AddOn: q.Get("add_on"), License: q.Get("license"),
		Group: q.Get("group"), Category: q.Get("category"), Status: q.Get("status")}
	v := indexView{Filter: f}
	groups, cats := map[string]bool{}, map[string]bool{}
	for _, n := range d.cat.UnitPrimitiveNames() {
		u := d.cat.UnitPrimitives[n]
		r := upRow{UnitPrimitive: u, Statuses: d.Statuses(u), Search: searchText(u), Hidden: !d.Matches(f, u)}
		if !r.Hidden {
			v.Shown++
		}
		v.Rows = append(v.Rows, r)
		if u.Group != "" {
			groups[u.Group] = true
		}
		if u.FeatureCategory != "" {
			cats[u.FeatureCategory] = true
		}
	}
	v.Backends = options(keys(d.cat.BackendServices), f.Backend)
	v.AddOns = options(keys(d.cat.AddOns), f.AddOn)
	v.Licenses = options(keys(d.cat.LicenseTypes), f.License)
	v.Groups = options(keys(groups), f.Group)
	v.Categories = options(keys(cats), f.Category)
	v.StatusOpt = options([]string{StatusFree, StatusPaid, StatusDeprecated, StatusSoon}, f.Status)
	for _, n := range keys(d.cat.BackendServices) {
		v.BackendList = append(v.BackendList, d.cat.BackendServices[n])
	}
	for _, n := range keys(d.cat.AddOns) {
		v.AddOnList = append(v.AddOnList, addOnItem{AddOn: d.cat.AddOns[n], Count: len(d.cat.UnitPrimitivesOfAddOn(n))})
	}
	return v
}

func options(values []string, selected string) []option {
	out := make([]option, 0, len(values))
	for _, v := range values {
		out = append(out, option{Value: v, Selected: v == selected})
	}
	return out
}

type backendRef struct {
	Name, Audience string
}

type milestone struct {
	When, What string
	Past       bool
}

type upView struct {
	*catalog.UnitPrimitive
	Statuses  []string
	Backends  []backendRef
	Audiences []string
	Services  []string
	Routes    []RouteUse
	Timeline  []milestone
	GrantedBy string
	Manifests bool // any manifest is loaded
}

func (d *Directory) upView(u *catalog.UnitPrimitive) upView {
	v := upView{UnitPrimitive: u, Statuses: d.Statuses(u), Audiences: d.cat.Audiences(u.Name),
		Routes: d.uses[u.Name], Manifests: len(d.manifests) > 0}
	for _, b := range u.BackendServices {
		if bs, ok := d.cat.BackendServices[b]; ok {
			v.Backends = append(v.Backends, backendRef{Name: b, Audience: bs.JWTAud})
		}
	}
	for _, n := range keys(d.cat.Services) {
		if slices.Contains(d.cat.Services[n].UnitPrimitives, u.Name) {
			v.Services = append(v.Services, n)
		}
	}
	if u.Milestone != "" {
		v.Timeline = append(v.Timeline, milestone{When: "milestone " + u.Milestone, What: "introduced", Past: true})
	}
	if u.MinGitLabVersionForFreeAccess != "" {
		v.Timeline = append(v.Timeline, milestone{When: "GitLab " + u.MinGitLabVersionForFreeAccess, What: "oldest GitLab version that gets it in free access"})
	}
	if u.MinGitLabVersion != "" {
		v.Timeline = append(v.Timeline, milestone{When: "GitLab " + u.MinGitLabVersion, What: "oldest GitLab version that gets it at all"})
	}
	switch {
	case u.CutOffDate == nil:
		v.Timeline = append(v.Timeline, milestone{When: "no cut-off date", What: "free access does not end"})
	case u.CutOffDate.After(d.now):
		days := int(u.CutOffDate.Sub(d.now).Hours() / 24)
		v.Timeline = append(v.Timeline, milestone{When: dateOf(u.CutOffDate), What: fmt.Sprintf("free access ends (in %d days); then add-on holders only", days)})
	default:
		v.Timeline = append(v.Timeline, milestone{When: dateOf(u.CutOffDate), What: "free access ended; add-on holders only", Past: true})
	}
	if u.Deprecated() {
		v.Timeline = append(v.Timeline, milestone{When: "deprecated", What: u.DeprecationMessage, Past: true})
	}
	paid := "no one (no add-on bundles it)"
	if len(u.AddOns) > 0 {
		paid = "holders of any of: " + strings.Join(u.AddOns, ", ")
	}
	switch {
	case u.CutOffDate == nil:
		v.GrantedBy = "everyone (free access, no cut-off date)"
	case u.FreeAt(d.now):
		v.GrantedBy = fmt.Sprintf("everyone until %s, then %s", dateOf(u.CutOffDate), paid)
	default:
		v.GrantedBy = paid
	}
	return v
}

type addOnView struct {
	*catalog.AddOn
	UnitPrimitives []upRow
	Backends       []string
	Paid, Free     int
}

func (d *Directory) addOnView(a *catalog.AddOn) addOnView {
	v := addOnView{AddOn: a}
	backends := map[string]bool{}
	for _, u := range d.cat.UnitPrimitivesOfAddOn(a.Name) {
		v.UnitPrimitives = append(v.UnitPrimitives, upRow{UnitPrimitive: u, Statuses: d.Statuses(u)})
		if u.FreeAt(d.now) {
			v.Free++
		} else {
			v.Paid++
		}
		for _, b := range u.BackendServices {
			backends[b] = true
		}
	}
	v.Backends = keys(backends)
	return v
}

type routeRow struct {
	ID, Path string
	Methods  []string
	Public   bool
	DryRun   bool
	How      string
	UPs      []string
	AnyOf    []string // at least one of these too
	Extra    []string // further requirements: prompts, body rules
}

type backendView struct {
	*catalog.BackendService
	UnitPrimitives []upRow
	Manifest       string // manifest file names; "" when none is loaded
	Routes         []routeRow
}

func (d *Directory) backendView(b *catalog.BackendService) backendView {
	v := backendView{BackendService: b}
	for _, u := range d.cat.UnitPrimitivesOfBackend(b.Name) {
		v.UnitPrimitives = append(v.UnitPrimitives, upRow{UnitPrimitive: u, Statuses: d.Statuses(u)})
	}
	for _, m := range d.manifests {
		if m.Backend != b.Name {
			continue
		}
		if v.Manifest != "" {
			v.Manifest += ", "
		}
		v.Manifest += baseName(m.File)
		for _, r := range m.Routes {
			row := routeRow{ID: r.ID, Path: r.Path, Methods: r.Methods, Public: r.Public, DryRun: r.DryRun}
			switch {
			case r.Public:
				row.How = "public"
			case r.HeaderUP != nil && len(r.HeaderUP.Allow) == 0:
				row.How = HowHeaderAny
			case r.HeaderUP != nil:
				row.How, row.UPs = HowHeader, r.HeaderUP.Allow
			case r.AuthenticateOnly:
				row.How = "authenticate-only"
			case r.NotFound:
				row.How = "not-found"
			default:
				row.How, row.UPs = HowAllOf, r.UnitPrimitives
			}
			row.AnyOf = r.AnyOf
			if r.Prompt {
				row.Extra = append(row.Extra, "and every unit primitive of the prompt named by the path (prompt registry)")
			}
			if len(r.Body) > 0 {
				row.Extra = append(row.Extra, "and the unit primitives its request body selects: "+strings.Join(bodyUnitPrimitives(m, r, d.cat.UnitPrimitiveNames()), ", "))
			}
			v.Routes = append(v.Routes, row)
		}
	}
	return v
}

type grantScope struct {
	Name      string
	Audiences []string
	Why       string
}

type grantView struct {
	AddOns    []option
	At        string // the date field's value (YYYY-MM-DD)
	Asked     bool   // the form was submitted
	Error     string
	Held      []string
	Scopes    []grantScope
	Audiences []string
	Data      template.JS // Static mode: the catalog facts the script needs
}

// grantView computes the grant for the form's add-ons and date with
// catalog.Grant, the function `ccauthz catalog scopes` calls. In Static mode
// it embeds the facts the browser-side calculator needs instead.
func (d *Directory) grantView(q url.Values, mode Mode) grantView {
	v := grantView{At: d.now.Format(time.DateOnly)}
	held := q["add_on"]
	for _, a := range held {
		if _, ok := d.cat.AddOns[a]; !ok {
			v.Error = fmt.Sprintf("unknown add-on %q", a)
		}
	}
	v.AddOns = make([]option, 0, len(d.cat.AddOns))
	for _, n := range keys(d.cat.AddOns) {
		v.AddOns = append(v.AddOns, option{Value: n, Selected: slices.Contains(held, n)})
	}
	at := d.now
	if s := strings.TrimSpace(q.Get("at")); s != "" {
		t, err := catalog.ParseDate(s)
		if err != nil {
			v.Error = "date: " + err.Error()
		} else {
			at, v.At = t, t.Format(time.DateOnly)
		}
	}
	if mode == Static {
		v.Data = d.grantData()
	}
	_, v.Asked = q["at"]
	if !v.Asked || v.Error != "" {
		return v
	}
	slices.Sort(held)
	v.Held = slices.Compact(held)
	g := d.cat.Grant(v.Held, at)
	v.Audiences = g.Audiences
	for _, s := range g.Scopes {
		u := d.cat.UnitPrimitives[s]
		var why []string
		if u.FreeAt(at) {
			why = append(why, "free access")
		}
		for _, a := range u.AddOns {
			if slices.Contains(v.Held, a) {
				why = append(why, a)
			}
		}
		v.Scopes = append(v.Scopes, grantScope{Name: s, Audiences: d.cat.Audiences(s), Why: strings.Join(why, ", ")})
	}
	return v
}

// grantFact is one unit primitive as the static calculator needs it.
type grantFact struct {
	Name      string   `json:"name"`
	CutOff    string   `json:"cut_off,omitempty"` // RFC 3339; "" = free for good
	AddOns    []string `json:"add_ons"`
	Audiences []string `json:"audiences"`
}

func (d *Directory) grantData() template.JS {
	facts := []grantFact{}
	for _, n := range d.cat.UnitPrimitiveNames() {
		u := d.cat.UnitPrimitives[n]
		facts = append(facts, grantFact{Name: n, CutOff: catalog.FormatDate(u.CutOffDate),
			AddOns: nonNil(u.AddOns), Audiences: nonNil(d.cat.Audiences(n))})
	}
	b, err := json.Marshal(facts)
	if err != nil {
		return "[]"
	}
	// json.Marshal escapes <, > and & so the data cannot close the script.
	return template.JS(b)
}

// --- template helpers ------------------------------------------------------

var funcs = template.FuncMap{
	"join": strings.Join,
	"date": dateOf,
	"has":  func(list []string, s string) bool { return slices.Contains(list, s) },
	"upHref": func(root, name string) string {
		return root + "up/" + url.PathEscape(name) + ".html"
	},
	"addOnHref": func(root, name string) string {
		return root + "add-on/" + url.PathEscape(name) + ".html"
	},
	"backendHref": func(root, name string) string {
		return root + "backend/" + url.PathEscape(name) + ".html"
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"statusLabel": func(s string) string {
		switch s {
		case StatusSoon:
			return "cut-off within 90 days"
		default:
			return s
		}
	},
	"static": func(m Mode) bool { return m == Static },
	"kind":   func(m catalog.CutOffMove) string { return m.Kind() },
	"datep":  catalog.FormatDate,
}

func dateOf(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
