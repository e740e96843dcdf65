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

// TestInternKeepsDistinctListsApart is a regression test: the shared-list
// table keyed a list by its strings joined with NUL, so a signed scope
// "complete_code\u0000duo_chat" was served as the two scopes
// ["complete_code", "duo_chat"] of an earlier token (and the other way
// round): the claims the policy saw were not the claims that were signed.
func TestInternKeepsDistinctListsApart(t *testing.T) {
	lists := [][]any{
		{"complete_code", "duo_chat"},
		{"complete_code\x00duo_chat"},
		{"complete_code\x00duo_chat", ""},
		{"complete_code", "duo_chat", ""},
		{"1:a"}, {"a", ""}, {"", "a"}, {}, {""},
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1, 0}} {
		var in interner
		for _, i := range order {
			if got := in.list(lists[i]); !reflect.DeepEqual(got, lists[i]) {
				t.Errorf("list(%q) = %q", lists[i], got)
			}
			got, ok := in.strings(lists[i])
			want := make([]string, len(lists[i]))
			for j, x := range lists[i] {
				want[j] = x.(string)
			}
			if !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("strings(%q) = %q", lists[i], got)
			}
		}
	}
}
