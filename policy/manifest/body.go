package manifest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

// Selector is a path into a JSON request body: field names separated by
// dots, each optionally followed by [N] (one array element) or [*] (every
// element), e.g. messages[*].additional_context[*].category.
type Selector struct {
	Path  string `json:"path"`
	Steps []Step `json:"-"`
}

// Step is one step of a selector.
type Step struct {
	Field string // a field of an object; "" for an array step
	Index int    // the array element, when Field is "" and not Each
	Each  bool   // every array element
}

// Many reports whether the selector can yield more than one value ([*]).
func (s Selector) Many() bool {
	for _, st := range s.Steps {
		if st.Each {
			return true
		}
	}
	return false
}

// BodyRule derives unit primitives from the request body. Exactly one of
// Each (every string value at a selector) and Cases (the first case whose
// conditions hold) is set.
type BodyRule struct {
	// Each selects the values; each value adds Template with {value}
	// replaced, or the unit primitives Map lists for it.
	Each     *Selector           `json:"each,omitempty"`
	Template string              `json:"unit_primitive,omitempty"`
	Map      map[string][]string `json:"map,omitempty"`
	// Cases are tried in order; the first whose When holds applies.
	// Otherwise ("reject" or "none") says what happens when none does.
	Cases     []BodyCase `json:"cases,omitempty"`
	Otherwise string     `json:"otherwise,omitempty"`
	// Detail is the 403 detail when a unit primitive this rule adds is
	// missing ({unit_primitive} allowed); default: the route's detail.
	Detail string           `json:"detail,omitempty"`
	Pos    catalog.Position `json:"-"`

	mapPos map[string][]catalog.Position
}

// Otherwise values.
const (
	OtherwiseReject = "reject" // no case matched: 400 body_invalid
	OtherwiseNone   = "none"   // no case matched: no unit primitive added
)

// BodyCase is one case of a cases rule.
type BodyCase struct {
	// When holds when every condition does (an empty When always holds).
	When []Condition `json:"when,omitempty"`
	// UnitPrimitives are added when the case applies (and PromptFrom is
	// absent from the body, or not set).
	UnitPrimitives []string `json:"unit_primitives,omitempty"`
	// PromptFrom names a body field holding a prompt id: when present, the
	// prompt's unit primitives are added instead of UnitPrimitives.
	PromptFrom *Selector        `json:"prompt_from,omitempty"`
	Pos        catalog.Position `json:"-"`

	upPos []catalog.Position
}

// Condition holds when the body's value at Selector is a string equal to one
// of Values. An absent field (or null) never holds.
type Condition struct {
	Selector Selector `json:"selector"`
	Values   []string `json:"values"`
}

var (
	bodyRuleFields = []string{"each", "unit_primitive", "map", "cases", "otherwise", "detail"}
	caseFields     = []string{"when", "unit_primitives", "prompt_from"}
	refuseFields   = []string{"header", "values", "detail", "flag"}
	fieldRe        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*`)
	indexRe        = regexp.MustCompile(`^\[(\*|0|[1-9][0-9]{0,5})\]`)
	templateRe     = regexp.MustCompile(`^[a-z0-9_]*\{value\}[a-z0-9_]*$`)
)

// ParseSelector parses a selector path.
func ParseSelector(p string) (Selector, error) {
	sel := Selector{Path: p}
	rest := p
	for i := 0; ; i++ {
		if i > 0 {
			if rest == "" {
				break
			}
			if rest[0] != '.' {
				return Selector{}, fmt.Errorf("selector %q: expected \".\" or \"[\" at %q", p, rest)
			}
			rest = rest[1:]
		}
		f := fieldRe.FindString(rest)
		if f == "" {
			return Selector{}, fmt.Errorf("selector %q: expected a field name at %q", p, rest)
		}
		sel.Steps = append(sel.Steps, Step{Field: f})
		rest = rest[len(f):]
		for {
			m := indexRe.FindStringSubmatch(rest)
			if m == nil {
				break
			}
			if m[1] == "*" {
				sel.Steps = append(sel.Steps, Step{Each: true})
			} else {
				n, _ := strconv.Atoi(m[1])
				sel.Steps = append(sel.Steps, Step{Index: n})
			}
			rest = rest[len(m[0]):]
		}
		if strings.HasPrefix(rest, "[") {
			return Selector{}, fmt.Errorf("selector %q: index at %q must be [N] or [*]", p, rest)
		}
	}
	if len(sel.Steps) > 16 {
		return Selector{}, fmt.Errorf("selector %q has more than 16 steps", p)
	}
	return sel, nil
}

func selector(r catalog.NodeReader, n *yaml.Node, field string, single bool) *Selector {
	s, ok := r.String(n, field)
	if !ok {
		return nil
	}
	sel, err := ParseSelector(s)
	if err != nil {
		r.Errorf(n, "%s", err)
		return nil
	}
	if single && sel.Many() {
		r.Errorf(n, "selector %q in %q must name one value (no [*])", s, field)
		return nil
	}
	return &sel
}

func decodeBody(r catalog.NodeReader, n *yaml.Node) []BodyRule {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias // rules shared between routes (v3 and v4 code suggestions)
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		r.Errorf(n, "field \"body\" must be a non-empty list of body rules")
		return nil
	}
	var out []BodyRule
	for _, item := range n.Content {
		f := r.Fields(item, "body rule", bodyRuleFields, nil)
		if f == nil {
			continue
		}
		br := BodyRule{Pos: r.Pos(item)}
		switch {
		case f["each"] != nil && f["cases"] != nil:
			r.Errorf(item, "a body rule sets either \"each\" or \"cases\", not both")
			continue
		case f["each"] != nil:
			br.Each = selector(r, f["each"], "each", false)
			for _, k := range []string{"otherwise"} {
				if f[k] != nil {
					r.Errorf(f[k], "%q belongs to a cases rule, not an each rule", k)
				}
			}
			switch {
			case f["unit_primitive"] != nil && f["map"] != nil:
				r.Errorf(item, "an each rule sets either \"unit_primitive\" (a template) or \"map\", not both")
			case f["unit_primitive"] != nil:
				if s, ok := r.String(f["unit_primitive"], "unit_primitive"); ok {
					if !templateRe.MatchString(s) {
						r.Errorf(f["unit_primitive"], "unit_primitive template %q must contain {value} once, with only a-z, 0-9 and _ around it", s)
					}
					br.Template = s
				}
			case f["map"] != nil:
				br.Map, br.mapPos = decodeValueMap(r, f["map"])
			default:
				r.Errorf(item, "an each rule needs \"unit_primitive\" (a template such as include_{value}_context) or \"map\"")
			}
		case f["cases"] != nil:
			for _, k := range []string{"unit_primitive", "map"} {
				if f[k] != nil {
					r.Errorf(f[k], "%q belongs to an each rule; a case lists unit_primitives", k)
				}
			}
			br.Cases = decodeCases(r, f["cases"])
			br.Otherwise = OtherwiseReject
			if s, ok := r.String(f["otherwise"], "otherwise"); ok {
				if s != OtherwiseReject && s != OtherwiseNone {
					r.Errorf(f["otherwise"], "otherwise %q must be %q or %q", s, OtherwiseReject, OtherwiseNone)
				}
				br.Otherwise = s
			}
		default:
			r.Errorf(item, "a body rule needs \"each\" or \"cases\"")
			continue
		}
		if s, ok := r.String(f["detail"], "detail"); ok {
			if strings.TrimSpace(s) == "" {
				r.Errorf(f["detail"], "field \"detail\" must not be empty")
			}
			for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
				if m[1] != "unit_primitive" {
					r.Errorf(f["detail"], "a body rule's detail may only use {unit_primitive}, not {%s}", m[1])
				}
			}
			br.Detail = s
		}
		out = append(out, br)
	}
	return out
}

func decodeValueMap(r catalog.NodeReader, n *yaml.Node) (map[string][]string, map[string][]catalog.Position) {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		r.Errorf(n, "field \"map\" must map body values to unit primitive lists")
		return nil, nil
	}
	out := map[string][]string{}
	pos := map[string][]catalog.Position{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.Errorf(k, "map keys must be strings")
			continue
		}
		if _, dup := out[k.Value]; dup {
			r.Errorf(k, "duplicate map key %q", k.Value)
			continue
		}
		ups, upPos := upList(r, v, k.Value)
		if len(ups) == 0 && v.Kind == yaml.SequenceNode {
			r.Errorf(v, "map value %q must list at least one unit primitive", k.Value)
		}
		out[k.Value], pos[k.Value] = ups, upPos
	}
	return out, pos
}

func decodeCases(r catalog.NodeReader, n *yaml.Node) []BodyCase {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		r.Errorf(n, "field \"cases\" must be a non-empty list")
		return nil
	}
	var out []BodyCase
	for _, item := range n.Content {
		f := r.Fields(item, "case", caseFields, nil)
		if f == nil {
			continue
		}
		c := BodyCase{Pos: r.Pos(item)}
		if wn := f["when"]; wn != nil {
			if wn.Kind != yaml.MappingNode {
				r.Errorf(wn, "field \"when\" must map selectors to a value or a list of values")
			} else {
				for i := 0; i+1 < len(wn.Content); i += 2 {
					k, v := wn.Content[i], wn.Content[i+1]
					sel := selector(r, k, "when", true)
					var vals []string
					if v.Kind == yaml.ScalarNode {
						if s, ok := r.String(v, k.Value); ok {
							vals = []string{s}
						}
					} else {
						vals = r.Strings(v, k.Value)
						if len(vals) == 0 && v.Kind == yaml.SequenceNode {
							r.Errorf(v, "condition %q must list at least one value", k.Value)
						}
					}
					if sel != nil && len(vals) > 0 {
						c.When = append(c.When, Condition{Selector: *sel, Values: vals})
					}
				}
			}
		}
		if f["unit_primitives"] != nil {
			c.UnitPrimitives, c.upPos = upList(r, f["unit_primitives"], "unit_primitives")
		}
		if f["prompt_from"] != nil {
			c.PromptFrom = selector(r, f["prompt_from"], "prompt_from", true)
		}
		if f["unit_primitives"] == nil && f["prompt_from"] == nil {
			r.Errorf(item, "a case needs \"unit_primitives\" or \"prompt_from\"")
		}
		if f["prompt_from"] != nil && f["unit_primitives"] == nil {
			r.Errorf(item, "a case with \"prompt_from\" also needs \"unit_primitives\": the default when the body has no prompt id")
		}
		out = append(out, c)
	}
	return out
}

func decodeRefusals(r catalog.NodeReader, n *yaml.Node) []HeaderRefusal {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		r.Errorf(n, "field \"refuse_headers\" must be a non-empty list")
		return nil
	}
	var out []HeaderRefusal
	for _, item := range n.Content {
		f := r.Fields(item, "header refusal", refuseFields, []string{"header", "values", "detail"})
		if f == nil {
			continue
		}
		h := HeaderRefusal{Pos: r.Pos(item)}
		h.Header = headerName(r, f["header"], "header")
		h.Values = r.Strings(f["values"], "values")
		if len(h.Values) == 0 && f["values"] != nil && f["values"].Kind == yaml.SequenceNode {
			r.Errorf(f["values"], "field \"values\" must list at least one value")
		}
		if s, ok := r.String(f["detail"], "detail"); ok {
			if strings.TrimSpace(s) == "" {
				r.Errorf(f["detail"], "field \"detail\" must not be empty")
			}
			h.Detail = s
		}
		if s, ok := r.String(f["flag"], "flag"); ok {
			h.Flag = s
		}
		out = append(out, h)
	}
	return out
}

func decodeFlags(r catalog.NodeReader, n *yaml.Node) map[string]bool {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.Errorf(n, "field \"flags\" must map flag names to true or false")
		return nil
	}
	out := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !identRe.MatchString(k.Value) {
			r.Errorf(k, "flag name %q must be snake_case", k.Value)
			continue
		}
		if _, dup := out[k.Value]; dup {
			r.Errorf(k, "duplicate flag %q", k.Value)
			continue
		}
		b, _ := r.Bool(v, k.Value)
		out[k.Value] = b
	}
	return out
}

// BodySelectors returns every selector the manifest's body rules read,
// deduplicated and sorted by path: exactly the parts of a body a decision
// can depend on (the decision cache keys on their values).
func (m *Manifest) BodySelectors() []Selector {
	seen := map[string]Selector{}
	for _, rt := range m.Routes {
		for _, br := range rt.Body {
			if br.Each != nil {
				seen[br.Each.Path] = *br.Each
			}
			for _, c := range br.Cases {
				for _, w := range c.When {
					seen[w.Selector.Path] = w.Selector
				}
				if c.PromptFrom != nil {
					seen[c.PromptFrom.Path] = *c.PromptFrom
				}
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]Selector, len(keys))
	for i, k := range keys {
		out[i] = seen[k]
	}
	return out
}
