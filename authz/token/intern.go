package token

import (
	"strconv"
	"sync"
	"unique"
)

// maxInternedLists bounds the shared claim lists (scope and audience sets)
// one verifier keeps; past it new lists are kept per token.
const maxInternedLists = 4096

// interner shares what tokens of the same grant, issuer or catalog have in
// common, so a cached token costs about its own claims (subject, jti, times)
// and not another copy of its scope list: claim names and the values of
// low-cardinality claims (iss, gitlab_realm) are interned strings, scope and
// audience lists are one shared slice per distinct list. Shared values are
// never modified (Claims are read-only, see Verify).
type interner struct {
	mu    sync.RWMutex
	lists map[string][]any
	strs  map[string][]string
}

// sharedValue reports claims whose string values repeat across tokens.
func sharedValue(claim string) bool {
	return claim == "iss" || claim == "gitlab_realm" || claim == "aud"
}

// sharedList reports claims whose list values repeat across tokens.
func sharedList(claim string) bool { return claim == "scopes" || claim == "aud" }

// compact returns a copy of p sized exactly, with shared keys and values.
func (in *interner) compact(p map[string]any) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		k = unique.Make(k).Value()
		switch t := v.(type) {
		case string:
			if sharedValue(k) {
				v = unique.Make(t).Value()
			}
		case []any:
			if sharedList(k) {
				v = in.list(t)
			}
		}
		out[k] = v
	}
	return out
}

// strings returns the strings of l (a decoded scope or audience list),
// shared between equal lists while the table has room; ok is false when l
// holds anything but strings.
func (in *interner) strings(l []any) (out []string, ok bool) {
	var buf [256]byte
	key, ok := listKey(buf[:0], l)
	if !ok {
		return nil, false
	}
	in.mu.RLock()
	shared, found := in.strs[string(key)] // no allocation for the lookup
	in.mu.RUnlock()
	if found {
		return shared, true
	}
	out = make([]string, len(l))
	for i, x := range l {
		out[i] = unique.Make(x.(string)).Value()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if shared, found := in.strs[string(key)]; found {
		return shared, true
	}
	if in.strs == nil {
		in.strs = map[string][]string{}
	}
	if len(in.strs) < maxInternedLists {
		in.strs[string(key)] = out
	}
	return out, true
}

// listKey appends the table key of a list of strings to b: each string's
// length, ':' and the string, so that distinct lists never share a key (a
// separator byte would not do: JSON strings may hold any byte, NUL included,
// and ["a\u0000b"] must not be served as ["a","b"]). ok is false when l
// holds anything but strings.
func listKey(b []byte, l []any) ([]byte, bool) {
	for _, x := range l {
		s, isStr := x.(string)
		if !isStr {
			return nil, false
		}
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	return b, true
}

// list returns the shared copy of a list of strings (or l itself when it
// holds anything else, or the table is full).
func (in *interner) list(l []any) []any {
	var buf [256]byte
	key, ok := listKey(buf[:0], l)
	if !ok {
		return l
	}
	in.mu.RLock()
	shared, ok := in.lists[string(key)]
	in.mu.RUnlock()
	if ok {
		return shared
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if shared, ok := in.lists[string(key)]; ok {
		return shared
	}
	if in.lists == nil {
		in.lists = map[string][]any{}
	}
	if len(in.lists) >= maxInternedLists {
		return l
	}
	cp := make([]any, len(l))
	for i, x := range l {
		cp[i] = unique.Make(x.(string)).Value()
	}
	in.lists[string(key)] = cp
	return cp
}
