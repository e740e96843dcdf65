package token

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestClaimSetKey(t *testing.T) {
	names := []string{"iss", "scopes"}
	key := func(p map[string]any) string {
		t.Helper()
		k, ok := ClaimSetKey(p, names)
		if !ok {
			t.Fatalf("ClaimSetKey(%v) not ok", p)
		}
		return k
	}
	base := map[string]any{"iss": "https://gitlab.com", "scopes": []any{"a", "b"}, "sub": "x", "jti": "1"}
	// Claims outside the set do not count.
	if key(base) != key(map[string]any{"iss": "https://gitlab.com", "scopes": []any{"a", "b"}, "sub": "y"}) {
		t.Error("a claim outside the set changed the key")
	}
	distinct := map[string]map[string]any{
		"base":           base,
		"absent iss":     {"scopes": []any{"a", "b"}},
		"null iss":       {"iss": nil, "scopes": []any{"a", "b"}},
		"empty iss":      {"iss": "", "scopes": []any{"a", "b"}},
		"number iss":     {"iss": float64(1), "scopes": []any{"a", "b"}},
		"string 1 iss":   {"iss": "1", "scopes": []any{"a", "b"}},
		"other order":    {"iss": "https://gitlab.com", "scopes": []any{"b", "a"}},
		"fewer scopes":   {"iss": "https://gitlab.com", "scopes": []any{"a"}},
		"joined scopes":  {"iss": "https://gitlab.com", "scopes": []any{"a,b"}},
		"shifted values": {"iss": "https://gitlab.com\",\"scopes", "scopes": []any{}},
	}
	seen := map[string]string{}
	for name, p := range distinct {
		k := key(p)
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share the key %q", name, other, k)
		}
		seen[k] = name
	}
	// A long encoding is replaced by its digest; still distinct.
	many := make([]any, 40)
	for i := range many {
		many[i] = strings.Repeat("s", 20)
	}
	long := key(map[string]any{"scopes": many})
	if !strings.HasPrefix(long, "#") || len(long) != 65 {
		t.Errorf("long key %q, want # and a hex SHA-256", long)
	}
	many[39] = "t"
	if key(map[string]any{"scopes": many}) == long {
		t.Error("digested keys collide")
	}
	if _, ok := ClaimSetKey(map[string]any{"iss": func() {}}, names); ok {
		t.Error("a value that does not marshal must not be keyed")
	}
}

func TestClaimsRememberTheirKey(t *testing.T) {
	c := &Claims{Raw: map[string]any{"iss": "a", "scopes": []any{"x"}}}
	names := []string{"iss", "scopes"}
	k1, _ := c.ClaimSetKey(names)
	c.Raw["iss"] = "changed" // claims never change; this shows the memo is used
	if k2, _ := c.ClaimSetKey(names); k2 != k1 {
		t.Errorf("second call recomputed: %q != %q", k2, k1)
	}
	// Another claim set is computed, not served the memo.
	if k3, _ := c.ClaimSetKey([]string{"iss"}); k3 != `9:"changed"` {
		t.Errorf("another claim set: %q", k3)
	}
}

// TestAppendJSONIsMarshal holds the claim-key encoder to json.Marshal, on the
// values a decoded payload holds: strings with every kind of byte, numbers
// on both sides of json's format switch, nested lists and objects.
func TestAppendJSONIsMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", "~", "\"", "\\", "<", ">", "&", "\n", "\x00", "\x7f", "é", "\u2028", "\xff", "/"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	nums := []float64{0, math.Copysign(0, -1), 1, -1, 1e-6, 9.99e-7, 1e21, 9.99e20, -1e21, 1700000000, 1.5, 0.1, 1 << 40, 123456789.125, 5e-324, math.MaxFloat64}
	var value func(depth int) any
	value = func(depth int) any {
		switch rng.IntN(7) {
		case 0:
			return nil
		case 1:
			return rng.IntN(2) == 0
		case 2, 3:
			return str()
		case 4:
			if rng.IntN(2) == 0 {
				return nums[rng.IntN(len(nums))]
			}
			return (rng.Float64() - 0.5) * math.Pow(10, float64(rng.IntN(50)-25))
		case 5:
			if depth > 2 {
				return str()
			}
			l := make([]any, rng.IntN(4))
			for i := range l {
				l[i] = value(depth + 1)
			}
			return l
		}
		if depth > 2 {
			return 1.0
		}
		m := map[string]any{}
		for range rng.IntN(3) {
			m[str()] = value(depth + 1)
		}
		return m
	}
	for i := range 20000 {
		v := value(0)
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendJSON([]byte("prefix"), v)
		if !ok || string(got) != "prefix"+string(want) {
			t.Fatalf("case %d: appendJSON(%#v) = %q, %v; json.Marshal = %q", i, v, got, ok, want)
		}
	}
}
