package catalog

// builder assembles a catalog from entities decoded one by one (layout files,
// JSON array items) and runs the checks that need all of them: duplicate
// names, alias collisions, dangling references and the cut-off rule.
type builder struct {
	ps       *Problems
	ups      []*upEntry
	backends []*backendEntry
	addOns   []*simpleEntry
	licenses []*simpleEntry
	services []*serviceEntry
}

// firstSeen maps a name to where it was first defined.
type firstSeen map[string]Position

// claim records name for kind, or reports a duplicate and returns false.
func (b *builder) claim(seen firstSeen, kind string, name ref) bool {
	if first, dup := seen[name.name]; dup {
		b.ps.Add(name.pos, "duplicate %s name %q (first defined at %s)", kind, name.name, first)
		return false
	}
	seen[name.name] = name.pos
	return true
}

// finish fills c with every entity and records every cross-entity problem.
func (b *builder) finish(c *Catalog) {
	backends, addOns, licenses, ups, services := firstSeen{}, firstSeen{}, firstSeen{}, firstSeen{}, firstSeen{}

	audOf := map[string]*BackendService{}
	for _, e := range b.backends {
		if e.hasName && b.claim(backends, "backend service", e.name) {
			c.BackendServices[e.b.Name] = e.b
			// The audience identifies the backend a token is for, so two
			// backends cannot share one.
			if other := audOf[e.b.JWTAud]; other != nil && e.b.JWTAud != "" {
				b.ps.Add(e.b.Pos, "backend service %q has the same jwt_aud %q as backend service %q (%s)", e.b.Name, e.b.JWTAud, other.Name, other.Pos)
			} else {
				audOf[e.b.JWTAud] = e.b
			}
		}
	}
	for _, e := range b.addOns {
		if e.hasName && b.claim(addOns, "add-on", e.name) {
			c.AddOns[e.name.name] = &AddOn{Name: e.name.name, Description: e.description, Pos: e.pos}
		}
	}
	for _, e := range b.licenses {
		if e.hasName && b.claim(licenses, "license type", e.name) {
			c.LicenseTypes[e.name.name] = &LicenseType{Name: e.name.name, Description: e.description, Pos: e.pos}
		}
	}
	for _, e := range b.ups {
		if e.hasName && b.claim(ups, "unit primitive", e.name) {
			c.UnitPrimitives[e.up.Name] = e.up
		}
	}
	for _, e := range b.services {
		if e.hasName && b.claim(services, "service", e.name) {
			c.Services[e.s.Name] = e.s
		}
	}

	// Alias names share the unit primitives' namespace: a token scope must
	// name exactly one unit primitive.
	aliasOf := map[string]string{}
	aliasPos := firstSeen{}
	for _, e := range b.ups {
		for _, a := range e.aliases {
			_, isUP := ups[a.name]
			switch {
			case !IsSnakeCase(a.name):
				checkSnakeCaseAt(b.ps, a.pos, a.name)
			case isUP:
				b.ps.Add(a.pos, "alias name %q of unit primitive %q is already the name of a unit primitive", a.name, e.up.Name)
			case aliasOf[a.name] != "":
				b.ps.Add(a.pos, "alias name %q of unit primitive %q is already an alias of %q (%s)", a.name, e.up.Name, aliasOf[a.name], aliasPos[a.name])
			default:
				aliasOf[a.name] = e.up.Name
				aliasPos[a.name] = a.pos
			}
		}
	}

	for _, e := range b.ups {
		for _, r := range e.addOns {
			if _, ok := addOns[r.name]; !ok {
				b.ps.Add(r.pos, "unknown add-on %q%s", r.name, hint(r.name, addOns))
			}
		}
		for _, r := range e.licenses {
			if _, ok := licenses[r.name]; !ok {
				b.ps.Add(r.pos, "unknown license type %q%s", r.name, hint(r.name, licenses))
			}
		}
		for _, r := range e.backends {
			if _, ok := backends[r.name]; !ok {
				b.ps.Add(r.pos, "unknown backend service %q%s", r.name, hint(r.name, backends))
			}
		}
		if !e.hasName {
			continue // already reported; a message about "" would only confuse
		}
		if !e.backendsInvalid {
			checkServed(b.ps, e.up, e.up.Pos)
		}
		if e.cutOffPos == (Position{}) {
			e.cutOffPos = e.up.Pos
		}
		checkCutOff(b.ps, e.up, e.cutOffPos)
	}

	for _, e := range b.services {
		for _, r := range e.ups {
			b.checkUPRef(r, ups, aliasOf)
		}
		if e.basic != nil {
			if !b.checkUPRef(*e.basic, ups, aliasOf) {
				continue
			}
			if !slicesContainsRef(e.ups, e.basic.name) {
				b.ps.Add(e.basic.pos, "basic_unit_primitive %q is not in the service's unit_primitives", e.basic.name)
			}
		}
	}
}

// checkServed requires a unit primitive to name a backend: without one no
// token audience would ever carry it.
func checkServed(ps *Problems, u *UnitPrimitive, pos Position) {
	if len(u.BackendServices) == 0 {
		ps.Add(pos, "unit primitive %q has no backend_services: no token audience would carry it", u.Name)
	}
}

// checkCutOff rejects a cut-off date without an add-on: once the date has
// passed, nothing could grant the unit primitive any more.
func checkCutOff(ps *Problems, u *UnitPrimitive, pos Position) {
	if u.CutOffDate != nil && len(u.AddOns) == 0 {
		ps.Add(pos, "unit primitive %q has a cut_off_date but no add_ons: it could never be granted after the cut-off", u.Name)
	}
}

// checkUPRef reports a reference to an unknown unit primitive; it returns
// whether the reference resolves.
func (b *builder) checkUPRef(r ref, ups firstSeen, aliasOf map[string]string) bool {
	if _, ok := ups[r.name]; ok {
		return true
	}
	if canonical := aliasOf[r.name]; canonical != "" {
		b.ps.Add(r.pos, "unknown unit primitive %q (it is an alias of %q: list the unit primitive itself)", r.name, canonical)
		return false
	}
	b.ps.Add(r.pos, "unknown unit primitive %q%s", r.name, hint(r.name, ups))
	return false
}

func slicesContainsRef(refs []ref, name string) bool {
	for _, r := range refs {
		if r.name == name {
			return true
		}
	}
	return false
}

// hint suggests the closest known name, for "did you mean" messages.
func hint(name string, known firstSeen) string {
	return DidYouMean(name, sortedKeys(known))
}
