package token

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// TestCacheStaysWithinItsBytes is a regression test: a promotion raised an
// entry's cost without evicting (the shard was to evict "on its next
// put"), so a cache of repeat tokens grew past caches.token_bytes; and a
// put replacing an entry subtracted the old cost but left it in the map,
// where eviction could subtract it again.
func TestCacheStaysWithinItsBytes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const bound = cacheShards * 1000
	c := newVerifiedCache(1<<20, bound)
	sums := make([][32]byte, 400)
	entries := make([]*cacheEntry, len(sums))
	for i := range sums {
		sums[i] = sha256.Sum256(fmt.Appendf(nil, "token-%d", i))
		entries[i] = &cacheEntry{expiry: now.Add(time.Hour), cost: 100}
		c.put(&sums[i], entries[i], now)
		c.put(&sums[i], entries[i], now) // a second miss of the same token
	}
	check := func(when string) {
		t.Helper()
		var bytes int
		for i := range c.shards {
			s := &c.shards[i]
			sum := 0
			for _, e := range s.m {
				sum += e.cost
			}
			if sum != s.bytes {
				t.Fatalf("%s: shard %d accounts %d bytes, its entries cost %d", when, i, s.bytes, sum)
			}
			if s.bytes > c.maxBytes {
				t.Fatalf("%s: shard %d holds %d bytes, bound %d", when, i, s.bytes, c.maxBytes)
			}
			bytes += s.bytes
		}
		if st := c.stats(); st.Bytes != bytes || st.Bytes > bound {
			t.Fatalf("%s: stats say %d bytes (entries %d), bound %d", when, st.Bytes, bytes, bound)
		}
	}
	check("after puts")
	promoted := 0
	for i := range sums {
		if c.get(&sums[i]) == entries[i] {
			c.promote(&sums[i], entries[i], &entryState{}, 260, now)
			promoted++
		}
	}
	if promoted == 0 {
		t.Fatal("no entry left to promote")
	}
	check("after promotions")
	// A promotion that could never fit drops the entry.
	for i := range sums {
		if c.get(&sums[i]) == entries[i] {
			c.promote(&sums[i], entries[i], &entryState{}, c.maxBytes+1, now)
			if c.get(&sums[i]) != nil {
				t.Fatal("an entry over the shard's bound stayed cached")
			}
			break
		}
	}
	check("after an oversized promotion")
}
