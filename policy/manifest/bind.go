package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/ccauthz/ccauthz/catalog"
)

// Bind checks the manifest against a catalog and returns a copy in which the
// backend is the catalog name (with its jwt_aud in Audience) and every unit
// primitive name is canonical (aliases resolved). It reports every problem at
// once: an unknown backend, an unknown unit primitive, a unit primitive the
// backend does not serve.
func (m *Manifest) Bind(cat *catalog.Catalog) (*Manifest, error) {
	if cat == nil {
		return nil, fmt.Errorf("manifest %s: no catalog to bind to", m.File)
	}
	var ps catalog.Problems
	out := m.clone()
	b, ok := cat.Backend(m.Backend)
	if !ok {
		known := make([]string, 0, len(cat.BackendServices))
		for name := range cat.BackendServices {
			known = append(known, name)
		}
		slices.Sort(known)
		ps.Add(m.BackendPos, "backend %q is not in the catalog (known: %v)", m.Backend, known)
	} else {
		out.Backend, out.Audience = b.Name, b.JWTAud
	}
	resolve := func(names []string, pos []catalog.Position, fallback catalog.Position) []string {
		res := make([]string, len(names))
		for i, n := range names {
			p := fallback
			if i < len(pos) {
				p = pos[i]
			}
			u, found := cat.Lookup(n)
			if !found {
				ps.Add(p, "unit primitive %q is not in the catalog", n)
				res[i] = n
				continue
			}
			if ok && !slices.Contains(u.BackendServices, b.Name) {
				ps.Add(p, "unit primitive %q is not served by backend %q (its backends: %v)", n, b.Name, u.BackendServices)
			}
			res[i] = u.Name
		}
		return res
	}
	for i := range out.Routes {
		rt := &out.Routes[i]
		rt.UnitPrimitives = resolve(rt.UnitPrimitives, rt.upPos, rt.Pos)
		if rt.HeaderUP != nil {
			rt.HeaderUP = &HeaderUP{Allow: resolve(rt.HeaderUP.Allow, rt.allowPos, rt.Pos)}
		}
		if rt.AnyOf != nil {
			rt.AnyOf = resolve(rt.AnyOf, rt.anyPos, rt.Pos)
		}
		for j := range rt.Body {
			br := &rt.Body[j]
			for v, ups := range br.Map {
				br.Map[v] = resolve(ups, br.mapPos[v], br.Pos)
			}
			for k := range br.Cases {
				c := &br.Cases[k]
				c.UnitPrimitives = resolve(c.UnitPrimitives, c.upPos, c.Pos)
			}
		}
	}
	for i := range out.Prompts {
		pr := &out.Prompts[i]
		pr.UnitPrimitives = resolve(pr.UnitPrimitives, pr.upPos, pr.Pos)
	}
	for i := range out.RateLimit.Classes {
		c := &out.RateLimit.Classes[i]
		c.UnitPrimitives = resolve(c.UnitPrimitives, c.upPos, c.Pos)
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	out.bound = true
	return out, nil
}

// Digest is the SHA-256 of the manifest's normalised content (what the
// generator reads), so comments and key order do not change it.
func (m *Manifest) Digest() string {
	b, err := json.Marshal(m)
	if err != nil {
		// Only strings, ints, bools and slices of them: cannot fail.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (m *Manifest) clone() *Manifest {
	out := *m
	out.Bindings = slices.Clone(m.Bindings)
	out.Routes = make([]Route, len(m.Routes))
	for i, r := range m.Routes {
		r.Methods = slices.Clone(r.Methods)
		r.Segments = slices.Clone(r.Segments)
		r.UnitPrimitives = slices.Clone(r.UnitPrimitives)
		r.DisallowedIssuers = slices.Clone(r.DisallowedIssuers)
		r.AnyOf = slices.Clone(r.AnyOf)
		r.RefuseHeaders = slices.Clone(r.RefuseHeaders)
		if r.HeaderUP != nil {
			h := *r.HeaderUP
			h.Allow = slices.Clone(h.Allow)
			r.HeaderUP = &h
		}
		body := make([]BodyRule, len(r.Body))
		for j, br := range r.Body {
			if br.Map != nil {
				mp := make(map[string][]string, len(br.Map))
				for k, v := range br.Map {
					mp[k] = slices.Clone(v)
				}
				br.Map = mp
			}
			cs := make([]BodyCase, len(br.Cases))
			for k, c := range br.Cases {
				c.UnitPrimitives = slices.Clone(c.UnitPrimitives)
				cs[k] = c
			}
			if br.Cases != nil {
				br.Cases = cs
			}
			body[j] = br
		}
		if r.Body != nil {
			r.Body = body
		}
		out.Routes[i] = r
	}
	out.RateLimit.Classes = make([]RateClass, len(m.RateLimit.Classes))
	for i, c := range m.RateLimit.Classes {
		c.UnitPrimitives = slices.Clone(c.UnitPrimitives)
		if c.Limit != nil {
			l := *c.Limit
			c.Limit = &l
		}
		c.PerInstance, c.PerUser = c.PerInstance.clone(), c.PerUser.clone()
		out.RateLimit.Classes[i] = c
	}
	out.Flags = maps.Clone(m.Flags)
	out.Prompts = make([]Prompt, len(m.Prompts))
	for i, p := range m.Prompts {
		p.UnitPrimitives = slices.Clone(p.UnitPrimitives)
		out.Prompts[i] = p
	}
	if m.Prompts == nil {
		out.Prompts = nil
	}
	if m.RateLimit.AuthFailures != nil {
		l := *m.RateLimit.AuthFailures
		out.RateLimit.AuthFailures = &l
	}
	return &out
}

func (k *KindLimit) clone() *KindLimit {
	if k == nil {
		return nil
	}
	out := *k
	out.SeatBuckets = maps.Clone(k.SeatBuckets)
	return &out
}
