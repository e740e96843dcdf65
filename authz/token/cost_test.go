package token

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// shardBytes sums the cache's own byte accounting and, separately, the
// costs of the entries it holds: the two must always agree.
func shardBytes(c *verifiedCache) (accounted, held int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		accounted += s.bytes
		for _, e := range s.m {
			held += e.cost
		}
		s.mu.RUnlock()
	}
	return accounted, held
}

// TestCacheEntryIsCompactUntilItsFirstHit: a verified token is cached as its
// payload's JSON (no decoded claims); its first hit decodes the payload into
// the same claims the verification produced, keeps them instead of the bytes,
// and the shard's byte accounting follows the entry's new cost.
func TestCacheEntryIsCompactUntilItsFirstHit(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	tok := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) {
		c["skip_usage_cutoff"] = true
		c["nested"] = map[string]any{"a": []any{1.5, "x", nil}}
	})
	first := v.Verify(t.Context(), bearer(tok), aud)
	if first.Status != StatusValid {
		t.Fatalf("%s/%s", first.Status, first.Reason)
	}
	sum := sha256.Sum256([]byte(tok))
	e := v.cache.get(&sum)
	if e == nil {
		t.Fatal("token not cached")
	}
	st := e.state.Load()
	if st.claims != nil || st.payload == nil {
		t.Fatalf("new entry holds claims %v, payload %d bytes; want the payload only", st.claims != nil, len(st.payload))
	}
	var p map[string]any
	if err := json.Unmarshal(st.payload, &p); err != nil || !reflect.DeepEqual(p, first.Claims.Raw) {
		t.Fatalf("cached payload %s (%v) is not the verified claims %v", st.payload, err, first.Claims.Raw)
	}
	compact := e.cost
	if a, h := shardBytes(v.cache); a != h || a != compact {
		t.Fatalf("accounted %d, held %d, entry %d", a, h, compact)
	}

	hit := v.Verify(t.Context(), bearer(tok), aud)
	if hit.Status != StatusValid || !reflect.DeepEqual(hit.Claims.Raw, first.Claims.Raw) {
		t.Fatalf("hit: %s/%s claims %v, want %v", hit.Status, hit.Reason, hit.Claims.Raw, first.Claims.Raw)
	}
	if a, b := claimFields(first.Claims), claimFields(hit.Claims); a != b {
		t.Fatalf("promoted claims differ:\n%s\n%s", a, b)
	}
	if hit.Claims.GrantDigest() != first.Claims.GrantDigest() || len(first.Claims.GrantDigest()) != 64 {
		t.Fatal("promoted claims have another grant digest")
	}
	st = e.state.Load()
	if st.claims != hit.Claims || st.payload != nil {
		t.Fatal("first hit did not keep the decoded claims in place of the payload")
	}
	if e.cost <= compact {
		t.Fatalf("promoted cost %d not above the compact %d", e.cost, compact)
	}
	if a, h := shardBytes(v.cache); a != h || a != e.cost {
		t.Fatalf("after promotion: accounted %d, held %d, entry %d", a, h, e.cost)
	}
	// Later hits serve the same claims without decoding again.
	if again := v.Verify(t.Context(), bearer(tok), aud); again.Claims != hit.Claims {
		t.Fatal("second hit decoded again")
	}
}

// claimFields renders the extracted claims (all but Raw and the memos).
func claimFields(c *Claims) string {
	return fmt.Sprintf("%q %q %q %v %v %v %q %q %q %q", c.Issuer, c.Subject, c.Audience, c.Expiry.UnixNano(),
		c.NotBefore.UnixNano(), c.IssuedAt.UnixNano(), c.JTI, c.Realm, c.InstanceID, c.Scopes)
}

// TestEntryCostIsHonest compares the cache's estimate of its entries with the
// heap they really hold, for GitLab-like tokens of distinct instances: new
// entries (the payload bytes) and promoted ones (decoded claims). The token
// cache's byte bound (caches.token_bytes) is only as good as this estimate.
func TestEntryCostIsHonest(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	v, err := NewVerifier([]IssuerConfig{{Name: "gitlab_com", Issuer: "https://gitlab.com", JWKSFile: "jwks.json"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	is := v.byIss["https://gitlab.com"]
	now := time.Now()
	const n = 4000
	payloads := make([][]byte, n)
	sums := make([][32]byte, n)
	for i := range payloads {
		c := map[string]any{
			"iss": "https://gitlab.com", "sub": fmt.Sprintf("8f6e4253-58ce-42b9-869c-%012d", i),
			"aud":    []string{"gitlab-ai-gateway", "gitlab-duo-workflow-service"},
			"scopes": []string{"complete_code", "generate_code", "duo_chat", "explain_code", "documentation_search"},
			"jti":    fmt.Sprintf("9f6e4253-58ce-42b9-869c-%012d", i), "gitlab_realm": "saas",
			"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Hour).Unix(), "skip_usage_cutoff": false,
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		payloads[i] = b
		sums[i] = sha256.Sum256(b)
	}
	// The payloads live in the test's slice; the entries keep copies, as
	// they keep the verifier's decoded bytes.
	measure := func(step func(i int)) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			step(i)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	entries := make([]*cacheEntry, n)
	newHeap := measure(func(i int) {
		e := &cacheEntry{iss: is, key: nil, hash: fmt.Sprintf("%064x", i), expiry: now.Add(time.Hour)}
		st := &entryState{payload: append([]byte(nil), payloads[i]...)}
		e.state.Store(st)
		e.cost = entryCost(st)
		v.cache.put(&sums[i], e, now)
		entries[i] = e
	})
	newEst := 0
	for _, e := range entries {
		newEst += e.cost
	}
	promotedHeap := measure(func(i int) {
		if _, ok := v.promote(&sums[i], entries[i], entries[i].state.Load().payload, now); !ok {
			t.Fatal("promotion failed")
		}
	})
	promotedEst := 0
	for _, e := range entries {
		promotedEst += e.cost
	}
	if st := v.Stats(); st.Entries != n {
		t.Fatalf("cache holds %d of %d", st.Entries, n)
	}
	if a, h := shardBytes(v.cache); a != h || a != promotedEst {
		t.Fatalf("accounted %d, held %d, estimated %d", a, h, promotedEst)
	}
	promotedHeap += newHeap // promotion's growth is on top of the new entries
	t.Logf("new entry: estimated %d B, measured %.0f B; promoted: estimated %d B, measured %.0f B",
		newEst/n, newHeap, promotedEst/n, promotedHeap)
	for _, c := range []struct {
		what          string
		est, measured float64
	}{{"new", float64(newEst) / n, newHeap}, {"promoted", float64(promotedEst) / n, promotedHeap}} {
		if r := c.est / c.measured; r < 0.8 || r > 1.35 {
			t.Errorf("%s entries: estimated %.0f B, measured %.0f B (ratio %.2f, want 0.8–1.35)", c.what, c.est, c.measured, r)
		}
	}
	runtime.KeepAlive(entries)
	runtime.KeepAlive(payloads)
}

// TestCompactEntryRejections: a cached token that was never hit is held to
// every rule a decoded one is: past exp it is expired (and dropped), another
// backend's audience is refused on its first hit, and an entry whose payload
// no longer decodes to valid claims is dropped and the token verified anew
// (fail closed, never served).
func TestCompactEntryRejections(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	clk := &clock{}
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{Now: clk.Now})
	tok := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) { c["exp"] = time.Now().Add(10 * time.Minute).Unix() })
	sum := sha256.Sum256([]byte(tok))
	entry := func() *entryState {
		t.Helper()
		e := v.cache.get(&sum)
		if e == nil {
			return nil
		}
		return e.state.Load()
	}

	// Another backend on the first hit: refused, and no claims returned.
	if r := v.Verify(t.Context(), bearer(tok), aud); r.Status != StatusValid {
		t.Fatalf("%s/%s", r.Status, r.Reason)
	}
	if r := v.Verify(t.Context(), bearer(tok), "gitlab-duo-workflow-service"); r.Reason != ReasonBadAudience || r.Claims != nil {
		t.Fatalf("first hit for another audience: %s/%s", r.Status, r.Reason)
	}

	// A payload that no longer yields valid claims (here: an exp out of
	// range) is not served: the token is verified again.
	e := v.cache.get(&sum)
	bad := &entryState{payload: []byte(`{"iss":"` + f.srv.URL + `","aud":"` + aud + `","exp":1e300}`)}
	e.state.Store(bad)
	if r := v.Verify(t.Context(), bearer(tok), aud); r.Status != StatusValid || r.Claims.Expiry.Year() > 3000 {
		t.Fatalf("corrupt entry served: %s/%s %v", r.Status, r.Reason, r.Claims)
	}
	if st := entry(); st == nil || st == bad || st.payload == nil {
		t.Fatal("corrupt entry not replaced by a fresh verification")
	}

	// Never hit, then past exp: expired, and the entry dropped.
	clk.Advance(11 * time.Minute)
	if r := v.Verify(t.Context(), bearer(tok), aud); r.Reason != ReasonExpired {
		t.Fatalf("after exp: %s/%s, want expired", r.Status, r.Reason)
	}
	if entry() != nil {
		t.Fatal("expired compact entry kept")
	}
}

// TestVerifiedScopesAreTheSignedOnes: through Verify and the cache, a token
// whose one scope holds a NUL is never given the shared scope list of
// another token (regression test for the shared-list key, see
// TestInternKeepsDistinctListsApart).
func TestVerifiedScopesAreTheSignedOnes(t *testing.T) {
	keys := testKeys()
	f := newFakeIssuer(t, keys[0])
	v := startVerifier(t, []IssuerConfig{f.config("gitlab_com")}, Options{})
	two := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) { c["scopes"] = []string{"complete_code", "duo_chat"} })
	one := mint(t, keys[0], f.srv.URL, func(h, c map[string]any) { c["scopes"] = []string{"complete_code\x00duo_chat"} })
	for _, tc := range []struct {
		tok  string
		want []string
	}{{two, []string{"complete_code", "duo_chat"}}, {one, []string{"complete_code\x00duo_chat"}}} {
		for i := range 2 { // the verification, then the cache's first hit
			r := v.Verify(t.Context(), bearer(tc.tok), aud)
			if r.Status != StatusValid {
				t.Fatalf("%s/%s", r.Status, r.Reason)
			}
			raw, _ := json.Marshal(r.Claims.Raw["scopes"])
			want, _ := json.Marshal(tc.want)
			if fmt.Sprint(r.Claims.Scopes) != fmt.Sprint(tc.want) || string(raw) != string(want) {
				t.Fatalf("call %d: scopes %q, raw %s; want %q", i, r.Claims.Scopes, raw, tc.want)
			}
		}
	}
}
