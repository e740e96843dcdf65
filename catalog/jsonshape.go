package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var jsonTopFields = []string{"add_ons", "backend_services", "license_types", "services", "unit_primitives"}

// jsonTopRequired are the keys every sync payload carries (services is the
// optional back-compat grouping).
var jsonTopRequired = []string{"add_ons", "backend_services", "license_types", "unit_primitives"}

// maxJSONDepth bounds nesting: the payload is three levels deep, so anything
// much deeper is garbage, and recursion must stay bounded on hostile input.
const maxJSONDepth = 64

// loadJSON reads the catalog payload an instance receives on sync. The JSON is
// turned into a yaml.Node tree whose lines and columns come from the byte
// offsets, so the same decoders (and messages) serve the layout and JSON.
func (l *loader) loadJSON(data []byte) *Catalog {
	r := NodeReader{File: l.label, Problems: &l.ps}
	// encoding/json rejects a byte order mark; editors on Windows write one.
	top := parseJSON(r, bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	if top == nil {
		return nil
	}
	stripAssociations(top)
	f := r.Fields(top, "catalog", jsonTopFields, jsonTopRequired)
	if f == nil {
		return nil
	}
	b := &builder{ps: &l.ps}
	req := jsonRequired
	eachItem(r, f["backend_services"], "backend_services", func(n *yaml.Node) {
		if e := decodeBackendService(r, n, req.backendService); e != nil {
			b.backends = append(b.backends, e)
		}
	})
	eachItem(r, f["add_ons"], "add_ons", func(n *yaml.Node) {
		if e := decodeSimple(r, n, "add-on", addOnFields, req.addOn); e != nil {
			b.addOns = append(b.addOns, e)
		}
	})
	eachItem(r, f["license_types"], "license_types", func(n *yaml.Node) {
		if e := decodeSimple(r, n, "license type", licenseTypeFields, req.licenseType); e != nil {
			b.licenses = append(b.licenses, e)
		}
	})
	eachItem(r, f["unit_primitives"], "unit_primitives", func(n *yaml.Node) {
		if e := decodeUnitPrimitive(r, n, req.unitPrimitive); e != nil {
			b.ups = append(b.ups, e)
		}
	})
	eachItem(r, f["services"], "services", func(n *yaml.Node) {
		if e := decodeService(r, n, req.service); e != nil {
			b.services = append(b.services, e)
		}
	})
	c := New(ShapeJSON, l.label)
	b.finish(c)
	return c
}

// eachItem walks one top-level array of entities.
func eachItem(r NodeReader, n *yaml.Node, field string, fn func(*yaml.Node)) {
	if n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		r.Errorf(n, "field %q must be a list, got %s", field, kindName(n))
		return
	}
	for _, item := range n.Content {
		if item.Kind == yaml.MappingNode {
			stripAssociations(item)
		}
		fn(item)
	}
}

// stripAssociations drops the keys ending in "_association" from an object,
// as GitLab's catalog loader does: they are the server's join records, not
// catalog data.
func stripAssociations(m *yaml.Node) {
	if m.Kind != yaml.MappingNode {
		return
	}
	kept := m.Content[:0:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && strings.HasSuffix(k.Value, "_association") {
			continue
		}
		kept = append(kept, m.Content[i], m.Content[i+1])
	}
	m.Content = kept
}

// jsonParser builds a yaml.Node tree from encoding/json's token stream.
type jsonParser struct {
	r          NodeReader
	data       []byte
	dec        *json.Decoder
	lineStarts []int
}

// parseJSON parses data as one JSON value; nil after recording a problem.
func parseJSON(r NodeReader, data []byte) *yaml.Node {
	if len(bytes.TrimSpace(data)) == 0 {
		r.Problems.Add(Position{File: r.File, Line: 1, Col: 1}, "file is empty")
		return nil
	}
	p := &jsonParser{r: r, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	p.lineStarts = []int{0}
	for i, c := range data {
		if c == '\n' {
			p.lineStarts = append(p.lineStarts, i+1)
		}
	}
	n, ok := p.value(0)
	if !ok {
		return nil
	}
	if rest := bytes.TrimLeft(data[p.dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		start := len(data) - len(rest)
		p.r.Problems.Add(p.pos(start), "JSON syntax error: unexpected data after the top-level value")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		r.Errorf(n, "catalog must be a JSON object, got %s", kindName(n))
		return nil
	}
	return n
}

// next returns the offset where the next token starts: the decoder's offset
// is the end of the previous token, and separators are consumed lazily.
func (p *jsonParser) next() int {
	off := int(p.dec.InputOffset())
	for off < len(p.data) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// pos converts a byte offset to a 1-based line and column (in characters).
func (p *jsonParser) pos(off int) Position {
	off = min(max(off, 0), len(p.data))
	line := sort.Search(len(p.lineStarts), func(i int) bool { return p.lineStarts[i] > off }) // first start after off
	start := p.lineStarts[line-1]
	return Position{File: p.r.File, Line: line, Col: utf8.RuneCount(p.data[start:off]) + 1}
}

func (p *jsonParser) fail(err error) {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		p.r.Problems.Add(p.pos(int(se.Offset)-1), "JSON syntax error: %s", se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		p.r.Problems.Add(p.pos(len(p.data)), "JSON syntax error: unexpected end of input")
	default:
		p.r.Problems.Add(p.pos(p.next()), "JSON syntax error: %v", err)
	}
}

// value reads one JSON value; ok is false after recording a problem.
func (p *jsonParser) value(depth int) (*yaml.Node, bool) {
	start := p.next()
	tok, err := p.dec.Token()
	if err != nil {
		p.fail(err)
		return nil, false
	}
	at := p.pos(start)
	n := &yaml.Node{Line: at.Line, Column: at.Col}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			p.r.Problems.Add(at, "JSON nests deeper than %d levels", maxJSONDepth)
			return nil, false
		}
		switch t {
		case '{':
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			for p.dec.More() {
				kstart := p.next()
				ktok, err := p.dec.Token()
				if err != nil {
					p.fail(err)
					return nil, false
				}
				key, isString := ktok.(string)
				if !isString {
					// encoding/json reports a non-string key as a syntax
					// error; this is only a guard.
					p.r.Problems.Add(p.pos(kstart), "JSON syntax error: object key must be a string")
					return nil, false
				}
				kp := p.pos(kstart)
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: kp.Line, Column: kp.Col}
				v, ok := p.value(depth + 1)
				if !ok {
					return nil, false
				}
				n.Content = append(n.Content, k, v)
			}
		case '[':
			n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			for p.dec.More() {
				v, ok := p.value(depth + 1)
				if !ok {
					return nil, false
				}
				n.Content = append(n.Content, v)
			}
		default:
			p.r.Problems.Add(at, "JSON syntax error: unexpected %q", string(t))
			return nil, false
		}
		if _, err := p.dec.Token(); err != nil { // the closing delimiter
			p.fail(err)
			return nil, false
		}
	case string:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", t
	case json.Number:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", t.String()
		if !strings.ContainsAny(t.String(), ".eE") {
			n.Tag = "!!int"
		}
	case bool:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", "false"
		if t {
			n.Value = "true"
		}
	case nil:
		n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
	}
	return n, true
}
