package manifest

import (
	"errors"
	"testing"

	"github.com/ccauthz/ccauthz/catalog"
)

// FuzzParse checks that no manifest input crashes the parser and that every
// rejection is a positioned ValidationError.
func FuzzParse(f *testing.F) {
	for _, name := range ExampleNames() {
		_, data, err := ExampleSource(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("backend: ai_gateway\nroutes:\n  - {id: a, methods: [GET], path: '/a/{x}/*', unit_primitives: [duo_chat]}\n"))
	f.Add([]byte("routes: *x\n"))
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data, cat)
		if err != nil {
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("rejection is not a ValidationError: %v", err)
			}
			return
		}
		if !m.Bound() || len(m.Routes) == 0 {
			t.Fatalf("accepted manifest is not bound or has no routes: %+v", m)
		}
	})
}
