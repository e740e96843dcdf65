package manifest

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ccauthz/ccauthz/catalog"
)

// versionFileRe is a prompt definition's file name: a semantic version
// (1.0.0, 1.1.0-dev) with a .yml or .yaml extension.
var versionFileRe = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?\.ya?ml$`)

// maxPromptFiles bounds how many definition files a registry may hold, so a
// wrongly named directory (a home directory) fails fast instead of walking.
const maxPromptFiles = 10000

// loadRegistry reads a prompt-definitions directory in the AI gateway's
// layout, <prompt_id>/<model family>/<version>.yml, where prompt_id may have
// several segments (chat/explain_code). Each file's top-level
// unit_primitives list (or older unit_primitive name) counts; other keys
// (name, model, prompt_template, params, ...) are the gateway's and ignored.
// display is the directory as messages name it. Every problem is recorded
// with its position.
func loadRegistry(ps *catalog.Problems, fsys fs.FS, display string, at catalog.Position) []Prompt {
	byID := map[string]*Prompt{}
	files := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			ps.Add(catalog.Position{File: path.Join(display, p)}, "prompt registry: %v", unwrapPathError(err))
			return nil
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".yaml") {
			return nil // READMEs and the like
		}
		files++
		if files > maxPromptFiles {
			ps.Add(at, "prompt registry %s holds more than %d definition files", display, maxPromptFiles)
			return fs.SkipAll
		}
		file := path.Join(display, p)
		parts := strings.Split(p, "/")
		if len(parts) < 3 || !versionFileRe.MatchString(name) {
			ps.Add(catalog.Position{File: file}, "prompt definition is not in the <prompt_id>/<model family>/<version>.yml layout (version like 1.0.0 or 1.1.0-dev)")
			return nil
		}
		id := strings.Join(parts[:len(parts)-2], "/")
		for _, seg := range parts[:len(parts)-2] {
			if !segmentRe.MatchString(seg) {
				ps.Add(catalog.Position{File: file}, "prompt id %q cannot be matched by any route: segment %q has characters a path pattern does not allow", id, seg)
				return nil
			}
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			ps.Add(catalog.Position{File: file}, "prompt definition: %v", unwrapPathError(err))
			return nil
		}
		ups, pos := promptUnitPrimitives(ps, file, data)
		if ups == nil {
			return nil
		}
		pr := byID[id]
		if pr == nil {
			pr = &Prompt{ID: id, Pos: catalog.Position{File: file, Line: 1, Col: 1}}
			byID[id] = pr
		}
		for i, up := range ups {
			if !slices.Contains(pr.UnitPrimitives, up) {
				pr.UnitPrimitives = append(pr.UnitPrimitives, up)
				pr.upPos = append(pr.upPos, pos[i])
			}
		}
		return nil
	})
	if err != nil {
		ps.Add(at, "prompt registry %s: %v", display, unwrapPathError(err))
	}
	if len(byID) == 0 && files == 0 {
		ps.Add(at, "prompt registry %s holds no prompt definitions (<prompt_id>/<model family>/<version>.yml)", display)
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Prompt, 0, len(ids))
	for _, id := range ids {
		out = append(out, *byID[id])
	}
	return out
}

// promptUnitPrimitives reads the unit primitives of one definition file.
func promptUnitPrimitives(ps *catalog.Problems, file string, data []byte) ([]string, []catalog.Position) {
	r := catalog.NodeReader{File: file, Problems: ps}
	root := r.Parse(data)
	if root == nil {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		r.Errorf(root, "a prompt definition must be a mapping")
		return nil, nil
	}
	var list, single *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "unit_primitives":
			list = root.Content[i+1]
		case "unit_primitive":
			single = root.Content[i+1]
		}
	}
	switch {
	case list != nil && single != nil:
		r.Errorf(single, "a prompt definition sets unit_primitives or the older unit_primitive, not both")
		return nil, nil
	case single != nil:
		s, ok := r.String(single, "unit_primitive")
		if !ok || s == "" {
			if ok {
				r.Errorf(single, "field \"unit_primitive\" must not be empty")
			}
			return nil, nil
		}
		return []string{s}, []catalog.Position{r.Pos(single)}
	case list != nil:
		ups, pos := upList(r, list, "unit_primitives")
		if len(ups) == 0 {
			if list.Kind == yaml.SequenceNode {
				r.Errorf(list, "field \"unit_primitives\" must list at least one unit primitive")
			}
			return nil, nil
		}
		return ups, pos
	}
	r.Errorf(root, "a prompt definition needs unit_primitives (or the older unit_primitive)")
	return nil, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	for e := err; e != nil; {
		if p, ok := e.(*fs.PathError); ok {
			pe = p
			break
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	if pe != nil {
		return pe.Err
	}
	return err
}

// PromptByID returns a prompt of the registry.
func (m *Manifest) PromptByID(id string) (Prompt, bool) {
	i, ok := slices.BinarySearchFunc(m.Prompts, id, func(p Prompt, id string) int { return strings.Compare(p.ID, id) })
	if !ok {
		return Prompt{}, false
	}
	return m.Prompts[i], true
}
