package catalog

import (
	"io/fs"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// loadLayout reads the gitlab-cloud-connector layout under dir: one YAML file
// per entity, named after the entity.
func (l *loader) loadLayout(dir string) *Catalog {
	b := &builder{ps: &l.ps}
	req := layoutRequired
	l.eachEntity(dir, dirBackendServices, func(r NodeReader, n *yaml.Node, file string) {
		if e := decodeBackendService(r, n, req.backendService); e != nil {
			l.checkFileName(e.name, e.hasName, file)
			b.backends = append(b.backends, e)
		}
	})
	l.eachEntity(dir, dirAddOns, func(r NodeReader, n *yaml.Node, file string) {
		if e := decodeSimple(r, n, "add-on", addOnFields, req.addOn); e != nil {
			l.checkFileName(e.name, e.hasName, file)
			b.addOns = append(b.addOns, e)
		}
	})
	l.eachEntity(dir, dirLicenseTypes, func(r NodeReader, n *yaml.Node, file string) {
		if e := decodeSimple(r, n, "license type", licenseTypeFields, req.licenseType); e != nil {
			l.checkFileName(e.name, e.hasName, file)
			b.licenses = append(b.licenses, e)
		}
	})
	l.eachEntity(dir, dirUnitPrimitives, func(r NodeReader, n *yaml.Node, file string) {
		if e := decodeUnitPrimitive(r, n, req.unitPrimitive); e != nil {
			l.checkFileName(e.name, e.hasName, file)
			b.ups = append(b.ups, e)
		}
	})
	l.eachEntity(dir, dirServices, func(r NodeReader, n *yaml.Node, file string) {
		if e := decodeService(r, n, req.service); e != nil {
			l.checkFileName(e.name, e.hasName, file)
			b.services = append(b.services, e)
		}
	})
	c := New(ShapeLayout, l.label)
	// A file that did not parse is missing from the catalog: checking the
	// others' references to it would bury its syntax error under follow-on
	// "unknown unit primitive" problems sorting before it.
	if l.unparsed == 0 {
		b.finish(c)
	}
	return c
}

// eachEntity parses every *.yml / *.yaml file of one entity directory, in name
// order, and hands its top-level node to decode. Other files (README, .keep)
// and subdirectories are not part of the layout and are skipped. Only
// unit_primitives/ must exist: a catalog may have no services, say.
func (l *loader) eachEntity(dir, kind string, decode func(r NodeReader, n *yaml.Node, file string)) {
	p := path.Join(dir, kind)
	entries, err := fs.ReadDir(l.fsys, p)
	if err != nil {
		if kind == dirUnitPrimitives {
			l.ps.Add(Position{File: l.name(dir)}, "layout has no %s/ directory", kind)
		}
		return
	}
	for _, ent := range entries {
		name := ent.Name()
		ext := path.Ext(name)
		if ent.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yml" && ext != ".yaml") {
			continue
		}
		fp := path.Join(p, name)
		label := l.name(fp)
		data, err := fs.ReadFile(l.fsys, fp)
		if err != nil {
			l.ps.Add(Position{File: label}, "cannot read: %v", unwrapPathError(err))
			continue
		}
		r := NodeReader{File: label, Problems: &l.ps}
		if n := r.Parse(data); n != nil {
			decode(r, n, name)
		} else {
			l.unparsed++
		}
	}
}

// checkFileName enforces GitLab's convention that an entity's file is named
// after it, which also makes a duplicate name across files visible.
func (l *loader) checkFileName(name ref, ok bool, file string) {
	if !ok {
		return
	}
	if base := strings.TrimSuffix(file, path.Ext(file)); base != name.name {
		l.ps.Add(name.pos, "name %q does not match the file name %q", name.name, file)
	}
}
