package token

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
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
	var b strings.Builder
	for _, n := range names {
		v, ok := p[n]
		if !ok {
			b.WriteByte('-')
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		b.WriteString(strconv.Itoa(len(j)))
		b.WriteByte(':')
		b.Write(j)
	}
	if b.Len() <= maxClaimKeyLen {
		return b.String(), true
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "#" + hex.EncodeToString(sum[:]), true
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
