package token

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// maxClaimKeyLen is the longest claim-set key kept as it is; a longer one
// (many scopes) is replaced by its SHA-256, so decision cache keys stay short.
const maxClaimKeyLen = 96

// ClaimSetKey encodes the values of the named claims of a payload, in the
// order given: each as <length>:<canonical JSON> (encoding/json, object keys
// sorted), or "-" when absent, so an absent claim, null and "" all differ.
// A key longer than maxClaimKeyLen is "#" and the hex SHA-256 of the
// encoding. Two payloads have the same key exactly when the named claims
// have the same values (up to SHA-256). ok is false for a value that does
// not marshal (never one decoded from JSON): callers must not key on it.
func ClaimSetKey(p map[string]any, names []string) (key string, ok bool) {
	b := make([]byte, 0, 64)
	for _, n := range names {
		v, ok := p[n]
		if !ok {
			b = append(b, '-')
			continue
		}
		j, ok := appendJSON(nil, v)
		if !ok {
			return "", false
		}
		b = strconv.AppendInt(b, int64(len(j)), 10)
		b = append(b, ':')
		b = append(b, j...)
	}
	if len(b) <= maxClaimKeyLen {
		return string(b), true
	}
	sum := sha256.Sum256(b)
	return "#" + hex.EncodeToString(sum[:]), true
}

// appendJSON appends what json.Marshal gives for v: directly for the values
// claims usually hold (strings that need no escaping, numbers json writes in
// 'f' format, booleans, null, and lists of them), through json.Marshal for
// everything else. TestAppendJSONIsMarshal holds it to json.Marshal.
func appendJSON(b []byte, v any) ([]byte, bool) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		return strconv.AppendBool(b, t), true
	case string:
		if plainJSONString(t) {
			b = append(b, '"')
			b = append(b, t...)
			return append(b, '"'), true
		}
	case float64:
		// encoding/json uses 'e' format outside [1e-6, 1e21), and rejects
		// NaN and infinities (which JSON never decodes to).
		if a := math.Abs(t); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(b, t, 'f', -1, 64), true
		}
	case []any:
		b = append(b, '[')
		for i, x := range t {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendJSON(b, x); !ok {
				return nil, false
			}
		}
		return append(b, ']'), true
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return append(b, j...), true
}

// plainJSONString reports whether json.Marshal writes s as is between
// quotes: printable ASCII without '"', backslash and the HTML characters it
// escapes ('<', '>', '&').
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// claimKeyMemo is one computed ClaimSetKey of a token's claims.
type claimKeyMemo struct {
	names []string
	key   string
	ok    bool
}

// ClaimSetKey is ClaimSetKey of the token's payload, computed once per token
// and claim set: a verified token is cached and checked many times, by a
// policy whose claim set does not change.
func (c *Claims) ClaimSetKey(names []string) (string, bool) {
	if m := c.keyMemo.Load(); m != nil && slices.Equal(m.names, names) {
		return m.key, m.ok
	}
	k, ok := ClaimSetKey(c.Raw, names)
	c.keyMemo.Store(&claimKeyMemo{names: names, key: k, ok: ok})
	return k, ok
}
