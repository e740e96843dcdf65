package manifest

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

//go:embed examples
var exampleFiles embed.FS

// ErrUnknownExample is returned by Example for a name it does not ship.
var ErrUnknownExample = errors.New("unknown example manifest")

// ExampleNames lists the bundled example manifests, sorted.
func ExampleNames() []string {
	entries, err := fs.ReadDir(exampleFiles, "examples")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
		}
	}
	slices.Sort(names)
	return names
}

// ExampleFS is the bundled examples directory: every example manifest and
// the prompt registry they name (prompts/), laid out as on disk, so a copy
// of it loads with Load.
func ExampleFS() fs.FS {
	sub, err := fs.Sub(exampleFiles, "examples")
	if err != nil {
		return exampleFiles // "examples" is a valid path: not reached
	}
	return sub
}

// ExampleSource returns the YAML of a bundled example manifest
// ("ai_gateway", "duo_workflow") and the name it is reported under.
func ExampleSource(name string) (file string, data []byte, err error) {
	file = path.Join("policy/manifest/examples", name+".yaml")
	data, err = exampleFiles.ReadFile("examples/" + name + ".yaml")
	if err != nil {
		return "", nil, fmt.Errorf("manifest: %w %q (known: %s)", ErrUnknownExample, name, strings.Join(ExampleNames(), ", "))
	}
	return file, data, nil
}

// Example parses a bundled example manifest (not yet bound to a catalog; see
// Bind). Its prompt registry is embedded with it.
func Example(name string) (*Manifest, error) {
	file, data, err := ExampleSource(name)
	if err != nil {
		return nil, err
	}
	opener := subDirOpener(ExampleFS(), ".")
	return parse(file, data, nil, func(rel string) (fs.FS, string, error) {
		fsys, p, err := opener(rel)
		return fsys, path.Join("policy/manifest/examples", p), err
	})
}
