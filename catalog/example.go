package catalog

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed example
var exampleFiles embed.FS

// ExampleLabel is how the bundled example catalog's files are named in
// messages and in Catalog.Source.
const ExampleLabel = "catalog/example"

// ExampleFS returns the bundled example catalog, in the gitlab-cloud-connector
// layout, as a file system rooted at its config directory.
func ExampleFS() fs.FS {
	sub, err := fs.Sub(exampleFiles, "example")
	if err != nil {
		panic(fmt.Sprintf("catalog: embedded example: %v", err)) // "example" is a valid path
	}
	return sub
}

// Example loads the bundled example catalog. Each call returns a fresh,
// independent *Catalog. The example is checked by the tests, so a failure to
// load it is a build defect and panics.
func Example() *Catalog {
	c, err := LoadFS(ExampleFS(), ".", ExampleLabel)
	if err != nil {
		panic(fmt.Sprintf("catalog: the embedded example catalog is invalid:\n%v", err))
	}
	return c
}
