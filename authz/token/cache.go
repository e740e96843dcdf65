package token

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ccauthz/ccauthz/authz/jwks"
)

const cacheShards = 64

// verifiedCache maps the SHA-256 of a raw token to its verified claims. It is
// sharded so that concurrent requests rarely share a lock, and bounded in
// entries and in an estimate of bytes per shard.
type verifiedCache struct {
	shards     [cacheShards]cacheShard
	maxEntries int // per shard
	maxBytes   int // per shard
}

type cacheShard struct {
	mu        sync.RWMutex
	m         map[[32]byte]*cacheEntry
	bytes     int
	hits      atomic.Uint64
	misses    atomic.Uint64
	evictions atomic.Uint64
	_         [64]byte // keep shards on separate cache lines
}

type cacheEntry struct {
	claims *Claims
	iss    *issuer
	key    *jwks.Key // the key that verified the token
	hash   string
	cost   int
}

// CacheStats are the verified-token cache counters.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
}

func newVerifiedCache(entries, bytes int) *verifiedCache {
	c := &verifiedCache{
		maxEntries: max(1, entries/cacheShards),
		maxBytes:   max(1, bytes/cacheShards),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[[32]byte]*cacheEntry)
	}
	return c
}

func (c *verifiedCache) shard(sum *[32]byte) *cacheShard {
	return &c.shards[sum[0]%cacheShards]
}

func (c *verifiedCache) get(sum *[32]byte) *cacheEntry {
	s := c.shard(sum)
	s.mu.RLock()
	e := s.m[*sum]
	s.mu.RUnlock()
	if e == nil {
		s.misses.Add(1)
	} else {
		s.hits.Add(1)
	}
	return e
}

func (c *verifiedCache) remove(sum *[32]byte, e *cacheEntry) {
	s := c.shard(sum)
	s.mu.Lock()
	if s.m[*sum] == e {
		delete(s.m, *sum)
		s.bytes -= e.cost
	}
	s.mu.Unlock()
}

// put adds e, evicting expired entries first and then arbitrary ones when
// the shard is full. Arbitrary eviction is fine: a lost entry costs one
// signature check.
func (c *verifiedCache) put(sum *[32]byte, e *cacheEntry, now time.Time) {
	if e.cost > c.maxBytes {
		return
	}
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[*sum]; old != nil {
		s.bytes -= old.cost
	}
	if len(s.m) >= c.maxEntries || s.bytes+e.cost > c.maxBytes {
		for k, v := range s.m {
			if !now.Before(v.claims.Expiry) {
				delete(s.m, k)
				s.bytes -= v.cost
				s.evictions.Add(1)
			}
		}
		// Still full: drop about an eighth of the shard, so the next
		// inserts do not scan again.
		drop := 0
		if len(s.m) >= c.maxEntries || s.bytes+e.cost > c.maxBytes {
			drop = max(1, len(s.m)/8)
		}
		for k, v := range s.m {
			if drop == 0 && len(s.m) < c.maxEntries && s.bytes+e.cost <= c.maxBytes {
				break
			}
			delete(s.m, k)
			s.bytes -= v.cost
			s.evictions.Add(1)
			drop = max(0, drop-1)
		}
	}
	s.m[*sum] = e
	s.bytes += e.cost
}

func (c *verifiedCache) stats() CacheStats {
	var st CacheStats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Evictions += s.evictions.Load()
		s.mu.RLock()
		st.Entries += len(s.m)
		s.mu.RUnlock()
	}
	return st
}
