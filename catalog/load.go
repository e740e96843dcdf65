package catalog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// The directories of the gitlab-cloud-connector layout, one YAML file per
// entity in each.
const (
	dirUnitPrimitives  = "unit_primitives"
	dirBackendServices = "backend_services"
	dirAddOns          = "add_ons"
	dirLicenseTypes    = "license_types"
	dirServices        = "services"
)

var layoutDirs = []string{dirUnitPrimitives, dirBackendServices, dirAddOns, dirLicenseTypes, dirServices}

// notACatalog is the message for a path that is none of the three shapes.
const notACatalog = "not a catalog: expected a gitlab-cloud-connector config directory " +
	"(unit_primitives/, backend_services/, add_ons/, license_types/, services/), " +
	"a legacy access_data.yml (top-level \"services:\") or a sync JSON payload (.json)"

// Load reads the catalog at path, whichever shape it is in: a directory is the
// gitlab-cloud-connector layout (the config directory itself or one that
// contains config/), a YAML file with a top-level `services:` is the legacy
// access_data.yml, a .json file (or a file starting with `{`) is the JSON
// payload an instance receives on sync. Every problem found is returned in one
// *ValidationError, positioned as file:line:col.
func Load(p string) (*Catalog, error) {
	info, err := os.Stat(p)
	if err != nil {
		var ps Problems
		ps.Add(Position{File: p}, "cannot read: %v", unwrapPathError(err))
		return nil, ps.Err()
	}
	if info.IsDir() {
		return LoadFS(os.DirFS(p), ".", p)
	}
	return LoadFS(os.DirFS(filepath.Dir(p)), filepath.Base(p), p)
}

// LoadFS is Load on a file system: root is the catalog's path inside fsys
// ("." for its top) and label is how root is named in messages (files below
// it are named label/relative/path).
func LoadFS(fsys fs.FS, root, label string) (*Catalog, error) {
	if root == "" {
		root = "."
	}
	if label == "" {
		label = root
	}
	l := &loader{fsys: fsys, root: root, label: label}
	c := l.load()
	if err := l.ps.Err(); err != nil {
		return nil, err
	}
	c.Seal()
	return c, nil
}

// loader holds one load's inputs and the problems found so far.
type loader struct {
	fsys  fs.FS
	root  string
	label string
	ps    Problems
	// unparsed counts layout files that failed to parse.
	unparsed int
}

// name is how the file at fs path p is called in messages.
func (l *loader) name(p string) string {
	if p == l.root {
		return l.label
	}
	rel := p
	if l.root != "." {
		rel = strings.TrimPrefix(p, l.root+"/")
	}
	return path.Join(l.label, rel)
}

func (l *loader) load() *Catalog {
	info, err := fs.Stat(l.fsys, l.root)
	if err != nil {
		l.ps.Add(Position{File: l.label}, "cannot read: %v", unwrapPathError(err))
		return nil
	}
	if info.IsDir() {
		dir, ok := l.layoutRoot()
		if !ok {
			l.ps.Add(Position{File: l.label}, "%s", notACatalog)
			return nil
		}
		return l.loadLayout(dir)
	}
	data, err := fs.ReadFile(l.fsys, l.root)
	if err != nil {
		l.ps.Add(Position{File: l.label}, "cannot read: %v", unwrapPathError(err))
		return nil
	}
	if strings.EqualFold(path.Ext(l.root), ".json") || looksLikeJSON(data) {
		return l.loadJSON(data)
	}
	r := NodeReader{File: l.label, Problems: &l.ps}
	top := r.Parse(data)
	if top == nil {
		return nil
	}
	if top.Kind != yaml.MappingNode || !hasKey(top, "services") {
		r.Errorf(top, "%s", notACatalog)
		return nil
	}
	return loadLegacy(r, top, l.label)
}

// layoutRoot finds the directory holding the layout's entity directories: the
// root itself or its config/ subdirectory.
func (l *loader) layoutRoot() (string, bool) {
	for _, dir := range []string{l.root, path.Join(l.root, "config")} {
		for _, sub := range layoutDirs {
			if info, err := fs.Stat(l.fsys, path.Join(dir, sub)); err == nil && info.IsDir() {
				return dir, true
			}
		}
	}
	return "", false
}

func looksLikeJSON(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return true
		}
	}
	return false
}

// unwrapPathError drops the path from an fs error: messages already start
// with the file's name.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
