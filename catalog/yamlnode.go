package catalog

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// NodeReader decodes YAML through yaml.Node so that every problem carries its
// file, line and column. It is shared by every YAML input ccauthz reads (the
// catalog, service manifests, the server config): messages stay uniform.
type NodeReader struct {
	File     string
	Problems *Problems
}

// Pos returns the position of n in the reader's file.
func (r NodeReader) Pos(n *yaml.Node) Position {
	if n == nil {
		return Position{File: r.File}
	}
	return Position{File: r.File, Line: n.Line, Col: n.Column}
}

// Errorf records a problem at n.
func (r NodeReader) Errorf(n *yaml.Node, format string, args ...any) {
	r.Problems.Add(r.Pos(n), format, args...)
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses data as one YAML document and returns its top-level node, or
// nil after recording a problem (syntax error, empty document, more than one
// document).
func (r NodeReader) Parse(data []byte) *yaml.Node {
	if len(strings.TrimSpace(string(data))) == 0 {
		r.Problems.Add(Position{File: r.File, Line: 1, Col: 1}, "file is empty")
		return nil
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			// Only comments (or document markers): nothing to read.
			r.Problems.Add(Position{File: r.File, Line: 1, Col: 1}, "file is empty")
			return nil
		}
		r.syntax(err, data)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.Problems.Add(Position{File: r.File, Line: extra.Line, Col: extra.Column}, "more than one YAML document in file")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		r.Problems.Add(Position{File: r.File, Line: 1, Col: 1}, "file is empty")
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		r.Problems.Add(r.Pos(root), "file is empty")
		return nil
	}
	return root
}

// syntax records a YAML syntax error. yaml.v3 reports the line of the
// enclosing construct rather than of the offending character (a tab on line 4
// comes out as line 3, a bad dedent as the line its mapping started on) and
// no column, so the position is recomputed: the problem is on the first line
// whose prefix of the document already fails with the same message.
func (r NodeReader) syntax(err error, data []byte) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	line, col := syntaxPosition(data, msg)
	r.Problems.Add(Position{File: r.File, Line: line, Col: col}, "YAML syntax error: %s", msg)
}

// syntaxPosition finds the line and column of a syntax error whose message is
// msg: the smallest number of leading lines that fails to parse with msg
// (found by bisection: once a prefix fails, longer ones fail the same way),
// and on that line the first tab for tab errors, else the first non-blank
// character.
func syntaxPosition(data []byte, msg string) (line, col int) {
	lines := strings.SplitAfter(string(data), "\n")
	failsAt := func(n int) bool {
		var doc yaml.Node
		err := yaml.NewDecoder(strings.NewReader(strings.Join(lines[:n], ""))).Decode(&doc)
		if err == nil {
			return false
		}
		return strings.HasSuffix(err.Error(), msg)
	}
	lo, hi := 1, len(lines) // invariant: the answer is in [lo, hi]
	for lo < hi {
		mid := (lo + hi) / 2
		if failsAt(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	text := strings.TrimRight(lines[lo-1], "\r\n")
	if strings.Contains(msg, "tab") {
		if i := strings.IndexByte(text, '\t'); i >= 0 {
			return lo, i + 1
		}
	}
	if i := strings.IndexFunc(text, func(c rune) bool { return c != ' ' && c != '\t' }); i >= 0 {
		return lo, i + 1
	}
	return lo, 1
}

// Fields checks that n is a mapping whose keys are all in known and that every
// name in required is present, then returns the value nodes by key. what names
// the thing being decoded, for messages ("unit primitive", "route").
// Duplicate keys, unknown keys and missing required keys are all recorded.
// The returned map is nil if n is not a mapping.
func (r NodeReader) Fields(n *yaml.Node, what string, known, required []string) map[string]*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.Errorf(n, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			r.Errorf(k, "%s has a non-scalar key", what)
			continue
		}
		if _, dup := out[k.Value]; dup {
			r.Errorf(k, "duplicate field %q in %s", k.Value, what)
			continue
		}
		if !slices.Contains(known, k.Value) {
			r.Errorf(k, "unknown field %q in %s%s", k.Value, what, DidYouMean(k.Value, known))
			continue
		}
		out[k.Value] = v
	}
	for _, f := range required {
		if v, ok := out[f]; !ok || isNull(v) {
			r.Errorf(n, "missing required field %q in %s", f, what)
		}
	}
	return out
}

// String decodes a scalar string field; ok is false (and a problem recorded)
// for a mapping, a sequence or null. Absent fields (n == nil) return "", false
// without a problem.
func (r NodeReader) String(n *yaml.Node, field string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		r.Errorf(n, "field %q must be a string, got %s", field, kindName(n))
		return "", false
	}
	return n.Value, true
}

// Strings decodes a sequence of scalar strings.
func (r NodeReader) Strings(n *yaml.Node, field string) []string {
	if n == nil || isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "field %q must be a list of strings, got %s", field, kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			r.Errorf(item, "field %q must be a list of strings, got an item that is %s", field, kindName(item))
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

// Bool decodes a boolean scalar.
func (r NodeReader) Bool(n *yaml.Node, field string) (bool, bool) {
	if n == nil {
		return false, false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "true", "True", "TRUE":
			return true, true
		case "false", "False", "FALSE":
			return false, true
		}
	}
	r.Errorf(n, "field %q must be true or false, got %s", field, describe(n))
	return false, false
}

// Int decodes an integer scalar.
func (r NodeReader) Int(n *yaml.Node, field string) (int, bool) {
	if n == nil {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	r.Errorf(n, "field %q must be an integer, got %s", field, describe(n))
	return 0, false
}

// Duration decodes a Go duration string such as "30s" or "24h".
func (r NodeReader) Duration(n *yaml.Node, field string) (time.Duration, bool) {
	if n == nil {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil {
			return d, true
		}
	}
	r.Errorf(n, "field %q must be a duration such as \"30s\" or \"24h\", got %s", field, describe(n))
	return 0, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func describe(n *yaml.Node) string { return kindName(n) }

// closest returns the known name within edit distance 2 of s, if any, for
// "did you mean" hints.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// DidYouMean returns ` (did you mean "x"?)` naming the known name closest to
// name (within edit distance 2), or "" when none is close. Every place that
// looks a name up (catalog entities, manifests, add-ons, backends, config
// fields) words its hint through it, so the hints read alike.
func DidYouMean(name string, known []string) string {
	if c := closest(name, known); c != "" && c != name {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
