package policy

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// writeBodyKey appends the body part of a decision-cache key: the body status
// and, for every selector the manifest's body rules read, a projection of
// the body at that selector — never the whole body. The projection keeps
// exactly what the generated body rules can tell apart: string leaves
// verbatim and in order, and for any other value only its JSON type (the
// rules answer "must be an object/array/string" without quoting it). Two
// bodies with equal projections get the same decision, so the key is sound;
// a body's other fields (the prompt text, the code) never reach the key.
func writeBodyKey(b *strings.Builder, body BodyInput, selectors []manifest.Selector) {
	status := body.status()
	b.WriteString(strconv.Itoa(len(status)))
	b.WriteByte(':')
	b.WriteString(status)
	if status != BodyOK {
		return
	}
	for _, sel := range selectors {
		p, err := json.Marshal(project(body.JSON, sel.Steps))
		if err != nil {
			// Projections hold only strings, nil, slices and type markers.
			p = []byte("!")
		}
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.Write(p)
	}
}

// typeMarker stands for a value of the wrong type at a step (or a non-string
// leaf): the rules only report that it is wrong.
type typeMarker struct {
	Type string `json:"~type"`
}

func jsonType(v any) typeMarker {
	switch v.(type) {
	case map[string]any:
		return typeMarker{"object"}
	case []any:
		return typeMarker{"array"}
	case string:
		return typeMarker{"string"}
	case bool:
		return typeMarker{"boolean"}
	}
	return typeMarker{"number"}
}

// project follows steps through v the way the generated Rego does: a
// missing field or element and null are nil (absent); [*] keeps every
// element in order.
func project(v any, steps []manifest.Step) any {
	if v == nil {
		return nil
	}
	if len(steps) == 0 {
		if s, ok := v.(string); ok {
			return s
		}
		return jsonType(v)
	}
	st := steps[0]
	if st.Field != "" {
		obj, ok := v.(map[string]any)
		if !ok {
			return jsonType(v)
		}
		return project(obj[st.Field], steps[1:])
	}
	arr, ok := v.([]any)
	if !ok {
		return jsonType(v)
	}
	if !st.Each {
		if st.Index >= len(arr) {
			return nil
		}
		return []any{project(arr[st.Index], steps[1:])}
	}
	out := make([]any, len(arr))
	for i, e := range arr {
		out[i] = project(e, steps[1:])
	}
	return out
}
