package token

import (
	"reflect"
	"testing"
	"unsafe"
)

// TestInternSharesRepeatedClaims: compact keeps the claims equal and shares
// scope lists between tokens of the same grant shape.
func TestInternSharesRepeatedClaims(t *testing.T) {
	var in interner
	mk := func(sub string) map[string]any {
		return map[string]any{
			"iss": "https://gitlab.com", "sub": sub, "gitlab_realm": "saas",
			"aud":    []any{"gitlab-ai-gateway"},
			"scopes": []any{"complete_code", "duo_chat"}, "exp": float64(1), "mixed": []any{"a", float64(1)},
		}
	}
	a, b := mk("one"), mk("two")
	ca, cb := in.compact(a), in.compact(b)
	if !reflect.DeepEqual(ca, a) || !reflect.DeepEqual(cb, b) {
		t.Fatalf("compact changed the claims:\n%v\n%v", ca, a)
	}
	sa, sb := ca["scopes"].([]any), cb["scopes"].([]any)
	if &sa[0] != &sb[0] {
		t.Error("equal scope lists must share one slice")
	}
	if unsafe.StringData(ca["iss"].(string)) != unsafe.StringData(cb["iss"].(string)) {
		t.Error("iss values must be shared")
	}
	if ma, mb := ca["mixed"].([]any), cb["mixed"].([]any); &ma[0] == &mb[0] {
		t.Error("a list with non-strings must not be shared")
	}
	// The table is bounded: past it lists are kept per token.
	for i := range maxInternedLists + 10 {
		in.list([]any{string(rune('a' + i%26)), string(rune(i))})
	}
	if len(in.lists) > maxInternedLists {
		t.Errorf("%d shared lists, bound %d", len(in.lists), maxInternedLists)
	}
}
