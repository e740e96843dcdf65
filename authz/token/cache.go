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

// cacheEntry is one verified token. It starts compact: the verified
// payload's JSON bytes and its expiry, no decoded claims. A
// token presented once (GitLab.com mints one per request) never costs more.
// The first hit decodes the payload once into Claims and keeps them instead
// of the bytes (promote), so a token presented again and again is decoded
// once, not per check.
type cacheEntry struct {
	iss    *issuer
	key    *jwks.Key // the key that verified the token
	hash   string
	expiry time.Time
	state  atomic.Pointer[entryState]
	// cost is the entry's estimated heap bytes (entryCost); it changes on
	// promotion and is read and written under the shard's lock.
	cost int
}

// entryState is what an entry holds: payload until the first hit, then
// claims. It is immutable; promotion swaps in a new one.
type entryState struct {
	payload []byte  // the verified payload JSON; nil once claims are set
	claims  *Claims // nil until the first hit
}

// CacheStats are the verified-token cache counters.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
	// Bytes is the entries' estimated heap bytes, what caches.token_bytes
	// bounds.
	Bytes int
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
		// Replaced (two misses of one token put it twice): out of the map
		// with its cost, so eviction cannot subtract it again.
		delete(s.m, *sum)
		s.bytes -= old.cost
	}
	c.makeRoom(s, 1, e.cost, now)
	s.m[*sum] = e
	s.bytes += e.cost
}

// makeRoom evicts from s (locked) until it has room for entries more
// entries and bytes more bytes: expired entries first, then, still full,
// about an eighth of the shard, so the next inserts do not scan again.
func (c *verifiedCache) makeRoom(s *cacheShard, entries, bytes int, now time.Time) {
	full := func() bool { return len(s.m)+entries > c.maxEntries || s.bytes+bytes > c.maxBytes }
	if !full() {
		return
	}
	for k, v := range s.m {
		if !now.Before(v.expiry) {
			delete(s.m, k)
			s.bytes -= v.cost
			s.evictions.Add(1)
		}
	}
	drop := 0
	if full() {
		drop = max(1, len(s.m)/8)
	}
	for k, v := range s.m {
		if drop == 0 && !full() {
			break
		}
		delete(s.m, k)
		s.bytes -= v.cost
		s.evictions.Add(1)
		drop = max(0, drop-1)
	}
}

// promote swaps e's state for st and accounts for the new cost, when e is
// still cached. A promotion that would take the shard over its bound evicts
// other entries first (makeRoom, with e out of the map meanwhile so it is
// kept); one that could never fit drops e instead, and the caller still
// gets its claims.
func (c *verifiedCache) promote(sum *[32]byte, e *cacheEntry, st *entryState, cost int, now time.Time) {
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	e.state.Store(st)
	old := e.cost
	e.cost = cost
	if s.m[*sum] != e {
		return
	}
	delete(s.m, *sum)
	s.bytes -= old
	if cost > c.maxBytes {
		return
	}
	c.makeRoom(s, 1, cost, now)
	s.m[*sum] = e
	s.bytes += cost
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
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}
