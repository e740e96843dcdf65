package manifest

import (
	"fmt"
	"io/fs"
	"net/textproto"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

var (
	manifestFields  = []string{"backend", "protocol", "bindings", "seat_buckets", "rate_limit", "flags", "prompt_registry", "routes"}
	bindingFields   = []string{"claim", "header", "token_kind"}
	seatFields      = []string{"small_max", "medium_max"}
	rateLimitFields = []string{"default_class", "classes", "auth_failures"}
	classFields     = []string{"name", "unit_primitives", "limit", "per_instance", "per_user"}
	limitFields     = []string{"requests_per_unit", "unit"}
	kindLimitFields = []string{"requests_per_unit", "unit", "seat_buckets"}
	routeFields     = []string{
		"id", "methods", "path", "public", "dry_run", "unit_primitives",
		"unit_primitive_header", "detail", "disallowed_issuers", "any_of",
		"authenticate_only", "not_found", "prompt", "body", "refuse_headers",
	}
	headerUPFields = []string{"allow"}

	// Methods a route may list. gRPC calls arrive as POST.
	knownMethods = []string{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
	limitUnits   = []string{"second", "minute", "hour", "day"}
	tokenKinds   = []string{"instance", "user"}

	identRe      = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	headerNameRe = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	claimRe      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	segmentRe    = regexp.MustCompile(`^[A-Za-z0-9._~!$&'()+,;=:@%-]+$`)
	placeholder  = regexp.MustCompile(`\{([^{}]*)\}`)
)

// Load reads and parses a manifest file. It validates the manifest's own
// structure (and reads its prompt registry, relative to the file); Bind
// checks it against a catalog.
func Load(file string) (*Manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	dir := filepath.Dir(file)
	open := func(rel string) (fs.FS, string, error) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		st, err := os.Stat(p)
		if err != nil {
			return nil, p, err
		}
		if !st.IsDir() {
			return nil, p, fmt.Errorf("not a directory")
		}
		return os.DirFS(p), p, nil
	}
	return parse(file, data, nil, open)
}

// LoadFS is Load on a file system.
func LoadFS(fsys fs.FS, file string) (*Manifest, error) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return parse(file, data, nil, subDirOpener(fsys, path.Dir(file)))
}

// subDirOpener opens registry directories relative to dir inside fsys.
func subDirOpener(fsys fs.FS, dir string) dirOpener {
	return func(rel string) (fs.FS, string, error) {
		p := path.Join(dir, rel)
		if !fs.ValidPath(p) {
			return nil, p, fmt.Errorf("the directory must stay inside the manifest's file system")
		}
		st, err := fs.Stat(fsys, p)
		if err != nil {
			return nil, p, unwrapPathError(err)
		}
		if !st.IsDir() {
			return nil, p, fmt.Errorf("not a directory")
		}
		sub, err := fs.Sub(fsys, p)
		return sub, p, err
	}
}

// dirOpener opens a directory named relative to the manifest and returns it
// with the name messages use for it.
type dirOpener func(rel string) (fs.FS, string, error)

// Parse decodes and validates a manifest. When cat is not nil the manifest
// is also bound to it (see Bind). Every problem is returned at once as a
// *catalog.ValidationError with file:line:col positions. A manifest that
// names a prompt registry must be read with Load or LoadFS (Parse has no
// directory to resolve it against).
func Parse(file string, data []byte, cat *catalog.Catalog) (*Manifest, error) {
	return parse(file, data, cat, nil)
}

func parse(file string, data []byte, cat *catalog.Catalog, open dirOpener) (*Manifest, error) {
	var ps catalog.Problems
	r := catalog.NodeReader{File: file, Problems: &ps}
	m := decode(r, r.Parse(data), open)
	if err := ps.Err(); err != nil {
		return nil, err
	}
	if cat == nil {
		return m, nil
	}
	return m.Bind(cat)
}

func decode(r catalog.NodeReader, root *yaml.Node, open dirOpener) *Manifest {
	m := &Manifest{File: r.File}
	f := r.Fields(root, "manifest", manifestFields, []string{"backend", "routes"})
	if f == nil {
		return m
	}
	m.Backend, _ = r.String(f["backend"], "backend")
	m.BackendPos = r.Pos(f["backend"])
	if m.Backend == "" && f["backend"] != nil && f["backend"].Kind == yaml.ScalarNode && f["backend"].Tag != "!!null" {
		r.Errorf(f["backend"], "field \"backend\" must not be empty")
	}
	m.Protocol = ProtocolHTTP
	if v, ok := r.String(f["protocol"], "protocol"); ok {
		if v != ProtocolHTTP && v != ProtocolGRPC {
			r.Errorf(f["protocol"], "field \"protocol\" must be %s or %s, got %q", ProtocolHTTP, ProtocolGRPC, v)
		}
		m.Protocol = v
	}
	m.Bindings = decodeBindings(r, f["bindings"])
	m.SeatBuckets = decodeSeats(r, f["seat_buckets"])
	m.RateLimit = decodeRateLimit(r, f["rate_limit"])
	m.Flags = decodeFlags(r, f["flags"])
	m.Routes = decodeRoutes(r, f["routes"])
	if s, ok := r.String(f["prompt_registry"], "prompt_registry"); ok {
		m.PromptRegistry = s
		switch {
		case s == "" || path.IsAbs(s) || filepath.IsAbs(s):
			r.Errorf(f["prompt_registry"], "prompt_registry %q must be a directory relative to the manifest", s)
		case open == nil:
			r.Errorf(f["prompt_registry"], "prompt_registry needs the manifest to be loaded from a file (its directory is relative to the manifest)")
		default:
			fsys, display, err := open(s)
			if err != nil {
				r.Errorf(f["prompt_registry"], "prompt_registry %s: %v", display, err)
			} else {
				m.Prompts = loadRegistry(r.Problems, fsys, display, r.Pos(f["prompt_registry"]))
			}
		}
	}
	checkManifestRefs(r, m, f)
	return m
}

// checkManifestRefs checks what routes refer to at the manifest level: the
// prompt registry and flags.
func checkManifestRefs(r catalog.NodeReader, m *Manifest, f map[string]*yaml.Node) {
	promptRoutes := 0
	for _, rt := range m.Routes {
		needsRegistry := rt.Prompt
		for _, br := range rt.Body {
			for _, c := range br.Cases {
				if c.PromptFrom != nil {
					needsRegistry = true
				}
			}
		}
		if rt.Prompt {
			promptRoutes++
		}
		if needsRegistry && f["prompt_registry"] == nil {
			r.Problems.Add(rt.Pos, "route %q reads prompts but the manifest names no prompt_registry", rt.ID)
		}
		for _, h := range rt.RefuseHeaders {
			if _, ok := m.Flags[h.Flag]; h.Flag != "" && !ok {
				r.Problems.Add(h.Pos, "flag %q is not declared in the manifest's flags", h.Flag)
			}
		}
	}
	if f["prompt_registry"] != nil && promptRoutes == 0 {
		r.Errorf(f["prompt_registry"], "prompt_registry is set but no route has prompt: true, so no prompt id can be matched")
	}
}

func decodeBindings(r catalog.NodeReader, n *yaml.Node) []Binding {
	if n == nil {
		return DefaultBindings()
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "field \"bindings\" must be a list of bindings")
		return nil
	}
	out := make([]Binding, 0, len(n.Content))
	seen := map[string]bool{}
	for _, item := range n.Content {
		f := r.Fields(item, "binding", bindingFields, []string{"claim", "header"})
		if f == nil {
			continue
		}
		b := Binding{Pos: r.Pos(item)}
		b.Claim, _ = r.String(f["claim"], "claim")
		if b.Claim != "" && !claimRe.MatchString(b.Claim) {
			r.Errorf(f["claim"], "claim %q is not a valid claim name", b.Claim)
		}
		b.Header = headerName(r, f["header"], "header")
		if kind, ok := r.String(f["token_kind"], "token_kind"); ok {
			if !slices.Contains(tokenKinds, kind) {
				r.Errorf(f["token_kind"], "token_kind %q must be one of %s", kind, strings.Join(tokenKinds, ", "))
			}
			b.TokenKind = kind
		}
		key := b.Claim + "\x00" + b.HeaderKey() + "\x00" + b.TokenKind
		if seen[key] {
			r.Errorf(item, "duplicate binding of claim %q to header %q", b.Claim, b.Header)
		}
		seen[key] = true
		for _, prev := range out {
			overlap := prev.TokenKind == "" || b.TokenKind == "" || prev.TokenKind == b.TokenKind
			if prev.Claim == b.Claim && overlap && prev.HeaderKey() != b.HeaderKey() && b.Header != "" && prev.Header != "" {
				r.Errorf(item, "claim %q is already bound to header %q for the same token kind; a claim can equal only one header", b.Claim, prev.Header)
			}
		}
		out = append(out, b)
	}
	return out
}

// headerName decodes a header name and returns its canonical form
// (X-Gitlab-Realm), recording a problem if it is not an RFC 9110 token.
func headerName(r catalog.NodeReader, n *yaml.Node, field string) string {
	s, ok := r.String(n, field)
	if !ok {
		return ""
	}
	if !headerNameRe.MatchString(s) {
		r.Errorf(n, "header name %q is not a valid HTTP header name", s)
		return ""
	}
	if strings.EqualFold(s, "authorization") {
		r.Errorf(n, "header %q cannot be bound: the policy never sees the Authorization header", s)
		return ""
	}
	return textproto.CanonicalMIMEHeaderKey(s)
}

func decodeSeats(r catalog.NodeReader, n *yaml.Node) SeatBuckets {
	sb := SeatBuckets{SmallMax: DefaultSmallMax, MediumMax: DefaultMediumMax}
	if n == nil {
		return sb
	}
	f := r.Fields(n, "seat_buckets", seatFields, nil)
	if f == nil {
		return sb
	}
	if v, ok := r.Int(f["small_max"], "small_max"); ok {
		if v < 1 {
			r.Errorf(f["small_max"], "small_max must be at least 1, got %d", v)
		}
		sb.SmallMax = v
	}
	if v, ok := r.Int(f["medium_max"], "medium_max"); ok {
		sb.MediumMax = v
	}
	if sb.MediumMax <= sb.SmallMax {
		r.Errorf(n, "medium_max (%d) must be greater than small_max (%d)", sb.MediumMax, sb.SmallMax)
	}
	return sb
}

func decodeRateLimit(r catalog.NodeReader, n *yaml.Node) RateLimit {
	rl := RateLimit{DefaultClass: DefaultRateClass}
	if n == nil {
		return rl
	}
	f := r.Fields(n, "rate_limit", rateLimitFields, nil)
	if f == nil {
		return rl
	}
	if s, ok := r.String(f["default_class"], "default_class"); ok {
		if !identRe.MatchString(s) {
			r.Errorf(f["default_class"], "default_class %q must be snake_case", s)
		}
		rl.DefaultClass = s
	}
	if an := f["auth_failures"]; an != nil {
		if lf := r.Fields(an, "auth_failures", limitFields, limitFields); lf != nil {
			l := decodeLimit(r, lf)
			rl.AuthFailures = &l
		}
	}
	cn := f["classes"]
	if cn == nil {
		return rl
	}
	if cn.Kind != yaml.SequenceNode {
		r.Errorf(cn, "field \"classes\" must be a list of rate classes")
		return rl
	}
	names := map[string]bool{}
	for _, item := range cn.Content {
		cf := r.Fields(item, "rate class", classFields, []string{"name", "unit_primitives"})
		if cf == nil {
			continue
		}
		c := RateClass{Pos: r.Pos(item)}
		if s, ok := r.String(cf["name"], "name"); ok {
			if !identRe.MatchString(s) {
				r.Errorf(cf["name"], "rate class name %q must be snake_case", s)
			}
			if names[s] {
				r.Errorf(cf["name"], "duplicate rate class %q", s)
			}
			names[s] = true
			c.Name = s
		}
		c.UnitPrimitives, c.upPos = upList(r, cf["unit_primitives"], "unit_primitives")
		if ln := cf["limit"]; ln != nil {
			if lf := r.Fields(ln, "limit", limitFields, limitFields); lf != nil {
				l := decodeLimit(r, lf)
				c.Limit = &l
			}
		}
		c.PerInstance = decodeKindLimit(r, cf["per_instance"], "per_instance")
		c.PerUser = decodeKindLimit(r, cf["per_user"], "per_user")
		rl.Classes = append(rl.Classes, c)
	}
	for i, c := range rl.Classes {
		if len(c.UnitPrimitives) == 0 && c.Name != "" && c.Name != rl.DefaultClass && i < len(cn.Content) {
			r.Errorf(cn.Content[i], "rate class %q lists no unit primitives and is not the default_class %q", c.Name, rl.DefaultClass)
		}
	}
	// A unit primitive belongs to at most one class.
	owner := map[string]string{}
	for i, item := range cn.Content {
		if i >= len(rl.Classes) {
			break
		}
		for _, up := range rl.Classes[i].UnitPrimitives {
			if prev, dup := owner[up]; dup && prev != rl.Classes[i].Name {
				r.Errorf(item, "unit primitive %q is in rate classes %q and %q", up, prev, rl.Classes[i].Name)
			}
			owner[up] = rl.Classes[i].Name
		}
	}
	return rl
}

// decodeLimit decodes requests_per_unit and unit from a limit's fields.
func decodeLimit(r catalog.NodeReader, lf map[string]*yaml.Node) Limit {
	var l Limit
	if v, ok := r.Int(lf["requests_per_unit"], "requests_per_unit"); ok {
		if v < 1 {
			r.Errorf(lf["requests_per_unit"], "requests_per_unit must be at least 1, got %d", v)
		}
		l.RequestsPerUnit = v
	}
	if u, ok := r.String(lf["unit"], "unit"); ok {
		if !slices.Contains(limitUnits, u) {
			r.Errorf(lf["unit"], "unit %q must be one of %s", u, strings.Join(limitUnits, ", "))
		}
		l.Unit = u
	}
	return l
}

// decodeKindLimit decodes a per_instance or per_user limit: a limit for
// every seat bucket, optionally overridden for small, medium and large.
func decodeKindLimit(r catalog.NodeReader, n *yaml.Node, field string) *KindLimit {
	if n == nil {
		return nil
	}
	f := r.Fields(n, field, kindLimitFields, limitFields)
	if f == nil {
		return nil
	}
	k := &KindLimit{Limit: decodeLimit(r, f)}
	sb := f["seat_buckets"]
	if sb == nil {
		return k
	}
	bf := r.Fields(sb, "seat_buckets", SeatBucketNames, nil)
	if bf == nil {
		return k
	}
	k.SeatBuckets = map[string]Limit{}
	for _, name := range SeatBucketNames {
		bn := bf[name]
		if bn == nil {
			continue
		}
		if lf := r.Fields(bn, "seat bucket "+name, limitFields, limitFields); lf != nil {
			k.SeatBuckets[name] = decodeLimit(r, lf)
		}
	}
	return k
}

// upList decodes a list of unit primitive names and records their positions
// for Bind.
func upList(r catalog.NodeReader, n *yaml.Node, field string) ([]string, []catalog.Position) {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // a YAML anchor shared between routes (allow-lists)
	}
	out := r.Strings(n, field)
	if len(out) == 0 || len(out) != len(n.Content) {
		return out, nil // a problem was recorded already
	}
	pos := make([]catalog.Position, len(out))
	for i, s := range out {
		pos[i] = r.Pos(n.Content[i])
		if s == "" {
			r.Errorf(n.Content[i], "field %q must not contain an empty name", field)
		}
	}
	return out, pos
}

func decodeRoutes(r catalog.NodeReader, n *yaml.Node) []Route {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "field \"routes\" must be a list of routes")
		return nil
	}
	if len(n.Content) == 0 {
		r.Errorf(n, "field \"routes\" must list at least one route")
		return nil
	}
	out := make([]Route, 0, len(n.Content))
	ids := map[string]bool{}
	for _, item := range n.Content {
		rt, ok := decodeRoute(r, item)
		if !ok {
			continue
		}
		if ids[rt.ID] {
			r.Errorf(item, "duplicate route id %q", rt.ID)
		}
		ids[rt.ID] = true
		out = append(out, rt)
	}
	checkOverlaps(r, out)
	return out
}

func decodeRoute(r catalog.NodeReader, n *yaml.Node) (Route, bool) {
	f := r.Fields(n, "route", routeFields, []string{"id", "methods", "path"})
	if f == nil {
		return Route{}, false
	}
	rt := Route{Pos: r.Pos(n)}
	if s, ok := r.String(f["id"], "id"); ok {
		if !identRe.MatchString(s) {
			r.Errorf(f["id"], "route id %q must be snake_case (it names a Rego package)", s)
		}
		rt.ID = s
	}
	for i, m := range r.Strings(f["methods"], "methods") {
		if !slices.Contains(knownMethods, m) {
			r.Errorf(f["methods"].Content[i], "method %q must be one of %s (upper case)", m, strings.Join(knownMethods, ", "))
			continue
		}
		if slices.Contains(rt.Methods, m) {
			r.Errorf(f["methods"].Content[i], "duplicate method %q", m)
			continue
		}
		rt.Methods = append(rt.Methods, m)
	}
	if f["methods"] != nil && f["methods"].Kind == yaml.SequenceNode && len(f["methods"].Content) == 0 {
		r.Errorf(f["methods"], "field \"methods\" must list at least one method")
	}
	slices.Sort(rt.Methods)
	if p, ok := r.String(f["path"], "path"); ok {
		rt.Path = p
		rt.Segments = parsePattern(r, f["path"], p)
	}
	rt.Public, _ = r.Bool(f["public"], "public")
	rt.DryRun, _ = r.Bool(f["dry_run"], "dry_run")
	if f["unit_primitives"] != nil {
		rt.UnitPrimitives, rt.upPos = upList(r, f["unit_primitives"], "unit_primitives")
		if len(rt.UnitPrimitives) == 0 && f["unit_primitives"].Kind == yaml.SequenceNode {
			r.Errorf(f["unit_primitives"], "field \"unit_primitives\" must list at least one unit primitive")
		}
		for i, up := range rt.UnitPrimitives {
			if slices.Contains(rt.UnitPrimitives[:i], up) {
				r.Errorf(f["unit_primitives"].Content[i], "duplicate unit primitive %q", up)
			}
		}
	}
	if hn := f["unit_primitive_header"]; hn != nil {
		hf := r.Fields(hn, "unit_primitive_header", headerUPFields, headerUPFields)
		if hf != nil {
			h := &HeaderUP{}
			h.Allow, rt.allowPos = upList(r, hf["allow"], "allow")
			if len(h.Allow) == 0 && hf["allow"] != nil && hf["allow"].Kind == yaml.SequenceNode {
				r.Errorf(hf["allow"], "field \"allow\" must list at least one unit primitive")
			}
			rt.HeaderUP = h
		}
	}
	if s, ok := r.String(f["detail"], "detail"); ok {
		rt.Detail = s
		prompt, _ := r.Bool(f["prompt"], "prompt")
		checkDetail(r, f["detail"], s, rt.Segments, prompt)
	}
	if f["any_of"] != nil {
		rt.AnyOf, rt.anyPos = upList(r, f["any_of"], "any_of")
		if len(rt.AnyOf) < 2 && f["any_of"].Kind == yaml.SequenceNode {
			r.Errorf(f["any_of"], "field \"any_of\" must list at least two unit primitives (use unit_primitives for one)")
		}
		for i, up := range rt.AnyOf {
			if slices.Contains(rt.AnyOf[:i], up) || slices.Contains(rt.UnitPrimitives, up) {
				r.Errorf(f["any_of"].Content[i], "duplicate unit primitive %q", up)
			}
		}
	}
	rt.AuthenticateOnly, _ = r.Bool(f["authenticate_only"], "authenticate_only")
	rt.NotFound, _ = r.Bool(f["not_found"], "not_found")
	rt.Prompt, _ = r.Bool(f["prompt"], "prompt")
	rt.Body = decodeBody(r, f["body"])
	rt.RefuseHeaders = decodeRefusals(r, f["refuse_headers"])
	rt.DisallowedIssuers = r.Strings(f["disallowed_issuers"], "disallowed_issuers")
	if f["disallowed_issuers"] != nil && len(rt.DisallowedIssuers) == 0 && f["disallowed_issuers"].Kind == yaml.SequenceNode {
		r.Errorf(f["disallowed_issuers"], "field \"disallowed_issuers\" must list at least one issuer when set")
	}

	checkRouteKind(r, n, f, &rt)
	switch {
	case rt.NotFound && rt.Detail == "":
		rt.Detail = NotFoundDetail
	case !rt.Public && rt.Detail == "":
		rt.Detail = DefaultDetail
	}
	return rt, true
}

// checkRouteKind checks that the route's fields make one coherent kind:
// public; not found; authenticate only; a unit primitive header (proxy); or
// fixed unit primitives (all-of and any-of), a prompt and body rules, which
// combine.
func checkRouteKind(r catalog.NodeReader, n *yaml.Node, f map[string]*yaml.Node, rt *Route) {
	authFields := []string{"unit_primitives", "any_of", "unit_primitive_header", "prompt", "body", "authenticate_only", "refuse_headers"}
	set := func(keys ...string) []string {
		var out []string
		for _, k := range keys {
			if f[k] != nil {
				out = append(out, k)
			}
		}
		return out
	}
	switch {
	case rt.Public:
		for _, k := range append(authFields, "detail", "disallowed_issuers", "dry_run", "not_found") {
			if f[k] != nil {
				r.Errorf(f[k], "a public route cannot set %q", k)
			}
		}
	case rt.NotFound:
		for _, k := range authFields {
			if f[k] != nil {
				r.Errorf(f[k], "a not_found route cannot set %q", k)
			}
		}
	case rt.AuthenticateOnly:
		for _, k := range set("unit_primitives", "any_of", "unit_primitive_header", "prompt", "body") {
			r.Errorf(f[k], "an authenticate_only route cannot set %q", k)
		}
	case rt.HeaderUP != nil:
		for _, k := range set("unit_primitives", "any_of", "prompt", "body") {
			r.Errorf(f[k], "route %q sets both unit_primitive_header and %s; use one", rt.ID, k)
		}
	case len(set("unit_primitives", "any_of", "prompt", "body")) == 0:
		r.Errorf(n, "route %q needs unit_primitives, any_of, unit_primitive_header, prompt, body, authenticate_only, not_found or public: true", rt.ID)
	}
	if rt.Prompt && (len(rt.Segments) == 0 || rt.Segments[len(rt.Segments)-1].Kind != SegWildcard) {
		r.Errorf(f["prompt"], "a prompt route's path must end in \"*\" (the prompt id)")
	}
}

func parsePattern(r catalog.NodeReader, n *yaml.Node, p string) []Segment {
	if !strings.HasPrefix(p, "/") {
		r.Errorf(n, "path %q must start with \"/\"", p)
		return nil
	}
	if strings.ContainsAny(p, "?#") {
		r.Errorf(n, "path %q must not contain a query or fragment", p)
		return nil
	}
	if p == "/" {
		return []Segment{}
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]Segment, 0, len(parts))
	params := map[string]bool{}
	for i, part := range parts {
		switch {
		case part == "*":
			if i != len(parts)-1 {
				r.Errorf(n, "path %q: \"*\" is only allowed as the last segment", p)
				return nil
			}
			segs = append(segs, Segment{Kind: SegWildcard})
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			if !identRe.MatchString(name) || name == "unit_primitive" {
				r.Errorf(n, "path %q: parameter %q must be a snake_case name other than unit_primitive", p, name)
				return nil
			}
			if params[name] {
				r.Errorf(n, "path %q: duplicate parameter %q", p, name)
				return nil
			}
			params[name] = true
			segs = append(segs, Segment{Kind: SegParam, Value: name})
		case part == "":
			r.Errorf(n, "path %q has an empty segment", p)
			return nil
		case !segmentRe.MatchString(part):
			r.Errorf(n, "path %q: segment %q has characters not allowed in a path pattern", p, part)
			return nil
		default:
			segs = append(segs, Segment{Kind: SegLiteral, Value: part})
		}
	}
	return segs
}

func checkDetail(r catalog.NodeReader, n *yaml.Node, detail string, segs []Segment, prompt bool) {
	if strings.TrimSpace(detail) == "" {
		r.Errorf(n, "field \"detail\" must not be empty")
		return
	}
	for _, m := range placeholder.FindAllStringSubmatch(detail, -1) {
		name := m[1]
		if name == "unit_primitive" || (prompt && name == "prompt_id") {
			continue
		}
		found := false
		for _, s := range segs {
			if s.Kind == SegParam && s.Value == name {
				found = true
			}
		}
		if !found {
			r.Errorf(n, "detail uses {%s}, which is neither {unit_primitive}, {prompt_id} (prompt routes) nor a parameter of the route's path", name)
		}
	}
}

// checkOverlaps rejects pairs of routes that share a method and can match the
// same path without one being at least as specific as the other in every
// segment (so the winner would depend on segment order, not on intent).
func checkOverlaps(r catalog.NodeReader, routes []Route) {
	for i := range routes {
		for j := i + 1; j < len(routes); j++ {
			a, b := routes[i], routes[j]
			if a.Segments == nil || b.Segments == nil || !sharesMethod(a, b) {
				continue
			}
			example, overlap := overlapPath(a.Segments, b.Segments)
			if !overlap {
				continue
			}
			if dominates(a.Segments, b.Segments) != dominates(b.Segments, a.Segments) {
				continue // one is strictly more specific everywhere: a clear winner
			}
			r.Problems.Add(b.Pos, "route %q overlaps route %q (line %d) ambiguously: both match %s %s",
				b.ID, a.ID, a.Pos.Line, commonMethod(a, b), example)
		}
	}
}

func sharesMethod(a, b Route) bool { return commonMethod(a, b) != "" }

func commonMethod(a, b Route) string {
	for _, m := range a.Methods {
		if slices.Contains(b.Methods, m) {
			return m
		}
	}
	return ""
}

// overlapPath reports whether some path matches both patterns and returns
// one such path.
func overlapPath(a, b []Segment) (string, bool) {
	var parts []string
	for i := 0; ; i++ {
		if i >= len(a) || i >= len(b) {
			// Both ended: the same path matches both. One ended while the other
			// goes on: the other needs at least one more segment (a wildcard
			// matches one or more), so no path matches both.
			return "/" + strings.Join(parts, "/"), len(a) == len(b)
		}
		sa, sb := a[i], b[i]
		if sa.Kind == SegWildcard || sb.Kind == SegWildcard {
			// The wildcard swallows whatever the other pattern still needs.
			rest := a[i:]
			if sa.Kind == SegWildcard {
				rest = b[i:]
			}
			for _, s := range rest {
				parts = append(parts, exampleSegment(s))
			}
			return "/" + strings.Join(parts, "/"), true
		}
		if sa.Kind == SegLiteral && sb.Kind == SegLiteral && sa.Value != sb.Value {
			return "", false
		}
		if sa.Kind == SegLiteral {
			parts = append(parts, sa.Value)
		} else {
			parts = append(parts, exampleSegment(sb))
		}
	}
}

func exampleSegment(s Segment) string {
	if s.Kind == SegLiteral {
		return s.Value
	}
	return "x"
}

// dominates reports whether pattern a is at least as specific as b in every
// position (literal ≥ param ≥ wildcard; a segment beats a wildcard end).
func dominates(a, b []Segment) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Kind < b[i].Kind {
			return false
		}
		if a[i].Kind == SegWildcard || b[i].Kind == SegWildcard {
			return true
		}
	}
	return true
}
