package site

import (
	"slices"
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// How a route requires a unit primitive.
const (
	// HowAllOf: the route lists unit primitives and the token needs all of
	// them (a single one is the common case).
	HowAllOf = "all-of"
	// HowHeader: the unit primitive is named by the X-Gitlab-Unit-Primitive
	// header and must be in the route's allow list.
	HowHeader = "header"
	// HowHeaderAny: as HowHeader, with no allow list: any unit primitive
	// the backend serves.
	HowHeaderAny = "header-any"
	// HowAnyOf: the token needs at least one of the route's any_of unit
	// primitives (With lists the alternatives).
	HowAnyOf = "any-of"
	// HowBody: a body rule of the route adds the unit primitive when the
	// request body selects it (a completion or generation, a chat context
	// category).
	HowBody = "body"
	// HowPrompt: the route serves prompts of the manifest's prompt registry,
	// and a prompt (named by the path, or by a body field) needs it.
	HowPrompt = "prompt"
)

// RouteUse is one route of one backend manifest that requires a unit
// primitive.
type RouteUse struct {
	Backend  string   `json:"backend"`
	Manifest string   `json:"manifest"` // base name of the manifest file
	RouteID  string   `json:"route_id"`
	Methods  []string `json:"methods"`
	Path     string   `json:"path"`
	How      string   `json:"how"` // HowAllOf, HowHeader, HowHeaderAny, HowAnyOf, HowBody or HowPrompt
	// With are the other unit primitives an all-of route also requires, or
	// the alternatives of an any-of route.
	With   []string `json:"with,omitempty"`
	DryRun bool     `json:"dry_run,omitempty"`
}

// RouteUses lists, per unit primitive (canonical name), the routes of the
// bound manifests that require it, sorted by backend, path and route id.
// served reports whether a backend serves a unit primitive; it resolves
// routes whose header allows any unit primitive. This is the one place that
// reads manifest routes for the directory: new ways for a route to require
// a unit primitive (any-of, body rules) are added here.
func RouteUses(manifests []*manifest.Manifest, all []string, served func(backend, up string) bool) map[string][]RouteUse {
	out := map[string][]RouteUse{}
	for _, m := range manifests {
		for _, r := range m.Routes {
			if r.Public {
				continue
			}
			use := RouteUse{
				Backend: m.Backend, Manifest: baseName(m.File), RouteID: r.ID,
				Methods: slices.Clone(r.Methods), Path: r.Path, DryRun: r.DryRun,
			}
			switch {
			case r.HeaderUP != nil && len(r.HeaderUP.Allow) == 0:
				use.How = HowHeaderAny
				for _, up := range all {
					if served(m.Backend, up) {
						out[up] = append(out[up], use)
					}
				}
			case r.HeaderUP != nil:
				use.How = HowHeader
				for _, up := range r.HeaderUP.Allow {
					out[up] = append(out[up], use)
				}
			default:
				use.How = HowAllOf
				for _, up := range r.UnitPrimitives {
					u := use
					u.With = slices.DeleteFunc(slices.Clone(r.UnitPrimitives), func(s string) bool { return s == up })
					out[up] = append(out[up], u)
				}
			}
			for _, up := range r.AnyOf {
				u := use
				u.How = HowAnyOf
				u.With = slices.DeleteFunc(slices.Clone(r.AnyOf), func(s string) bool { return s == up })
				out[up] = append(out[up], u)
			}
			if r.Prompt {
				for _, p := range m.Prompts {
					for _, up := range p.UnitPrimitives {
						u := use
						u.How = HowPrompt
						out[up] = append(out[up], u)
					}
				}
			}
			for _, up := range bodyUnitPrimitives(m, r, all) {
				u := use
				u.How = HowBody
				out[up] = append(out[up], u)
			}
		}
	}
	for up := range out {
		slices.SortStableFunc(out[up], func(a, b RouteUse) int {
			if c := strings.Compare(a.Backend, b.Backend); c != 0 {
				return c
			}
			if c := strings.Compare(a.Path, b.Path); c != 0 {
				return c
			}
			return strings.Compare(a.RouteID, b.RouteID)
		})
		out[up] = slices.CompactFunc(out[up], func(a, b RouteUse) bool {
			return a.Backend == b.Backend && a.RouteID == b.RouteID && a.How == b.How
		})
	}
	return out
}

// bodyUnitPrimitives are the unit primitives a route's body rules may add:
// the values of their maps and cases, every catalog unit primitive a
// template such as include_{value}_context can name, and the prompts' unit
// primitives when a case reads a prompt id from the body.
func bodyUnitPrimitives(m *manifest.Manifest, r manifest.Route, all []string) []string {
	var ups []string
	for _, b := range r.Body {
		for _, list := range b.Map {
			ups = append(ups, list...)
		}
		if prefix, suffix, ok := strings.Cut(b.Template, "{value}"); ok {
			for _, up := range all {
				if len(up) > len(prefix)+len(suffix) && strings.HasPrefix(up, prefix) && strings.HasSuffix(up, suffix) {
					ups = append(ups, up)
				}
			}
		}
		for _, c := range b.Cases {
			ups = append(ups, c.UnitPrimitives...)
			if c.PromptFrom != nil {
				for _, p := range m.Prompts {
					ups = append(ups, p.UnitPrimitives...)
				}
			}
		}
	}
	slices.Sort(ups)
	return slices.Compact(ups)
}
