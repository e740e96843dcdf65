package catalog

import (
	"strings"
	"testing"
)

func TestNodeReaderFields(t *testing.T) {
	var ps Problems
	r := NodeReader{File: "x.yml", Problems: &ps}
	root := r.Parse([]byte("name: a\nnmae: b\nname: c\nlist: [1, {a: b}]\n"))
	f := r.Fields(root, "thing", []string{"name", "list", "description"}, []string{"name", "description"})
	r.Strings(f["list"], "list")
	err := ps.Err()
	if err == nil {
		t.Fatal("expected problems")
	}
	want := strings.Join([]string{
		`x.yml:1:1: missing required field "description" in thing`,
		`x.yml:2:1: unknown field "nmae" in thing (did you mean "name"?)`,
		`x.yml:3:1: duplicate field "name" in thing`,
		`x.yml:4:11: field "list" must be a list of strings, got an item that is a mapping`,
	}, "\n")
	if got := err.Error(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNodeReaderParseErrors(t *testing.T) {
	cases := map[string]string{
		"":           "x.yml:1:1: file is empty",
		"   \n":      "x.yml:1:1: file is empty",
		"a: [1, 2\n": "x.yml:1:1: YAML syntax error: did not find expected ',' or ']'",
		// yaml.v3 says line 3 (the mapping's) for the tab on line 4.
		"a:\n  b: 1\n  c: 2\n  \td: 3\n": "x.yml:4:3: YAML syntax error: found a tab character that violates indentation",
		// A bad dedent on line 9; yaml.v3 says line 8.
		"a:\n  b: 1\n  c:\n    - x\n    - y\n  d: 2\ne:\n   f: 1\n  g: 2\n": "x.yml:9:3: YAML syntax error: did not find expected key",
		// yaml.v3 gives no line at all for this one.
		"a: 1\nb: c: d\n": "x.yml:2:1: YAML syntax error: mapping values are not allowed in this context",
		// An unterminated string is reported where it starts, not at the end.
		"a: 1\nb: \"open\nc: 3\n": "x.yml:2:1: YAML syntax error: found unexpected end of stream",
		"a: 1\n---\nb: 2\n":       "x.yml:2:1: more than one YAML document in file",
	}
	for in, want := range cases {
		var ps Problems
		r := NodeReader{File: "x.yml", Problems: &ps}
		if n := r.Parse([]byte(in)); n != nil {
			t.Errorf("%q: expected nil node", in)
		}
		if err := ps.Err(); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", in, err, want)
		}
	}
}
