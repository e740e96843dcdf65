package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Buckets is a set of token buckets keyed by string, safe for concurrent use.
// Memory is bounded: a bucket that has been idle long enough to refill
// completely is indistinguishable from a new one and is dropped when its shard
// is full; if a shard is still full after that, its least recently used
// bucket is dropped (which can only make the limiter more permissive for that
// key, never stricter).
type Buckets struct {
	shards      [shardCount]bucketShard
	seed        maphash.Seed
	maxPerShard int
}

const shardCount = 64

type bucketShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill
	fullAt int64 // unix nanoseconds when the bucket will be full again
}

// NewBuckets returns buckets holding at most maxEntries keys (at least one
// per shard).
func NewBuckets(maxEntries int) *Buckets {
	b := &Buckets{seed: maphash.MakeSeed(), maxPerShard: max(1, maxEntries/shardCount)}
	for i := range b.shards {
		b.shards[i].m = make(map[string]*bucket)
	}
	return b
}

// Take takes one token from the bucket for key, which holds up to burst
// tokens and refills at rate tokens per second. It reports whether a token was
// available and, if not, how long until one will be.
func (b *Buckets) Take(key string, burst int, rate float64, now time.Time) (bool, time.Duration) {
	if burst <= 0 || rate <= 0 {
		return false, time.Duration(math.MaxInt64)
	}
	s := &b.shards[maphash.String(b.seed, key)%shardCount]
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	bk, ok := s.m[key]
	if !ok {
		if len(s.m) >= b.maxPerShard {
			s.evict(n)
		}
		bk = &bucket{tokens: float64(burst), last: n}
		s.m[key] = bk
	}
	if elapsed := n - bk.last; elapsed > 0 {
		bk.tokens = math.Min(float64(burst), bk.tokens+float64(elapsed)/1e9*rate)
		bk.last = n
	}
	if bk.tokens >= 1 {
		bk.tokens--
		bk.fullAt = n + int64((float64(burst)-bk.tokens)/rate*1e9)
		return true, 0
	}
	wait := time.Duration((1 - bk.tokens) / rate * 1e9)
	return false, max(wait, time.Nanosecond)
}

// Len reports how many buckets are held.
func (b *Buckets) Len() int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// evict makes room in a full shard: first every bucket that has refilled
// completely by now (dropping it changes nothing), then, if none had, the
// least recently used one. Called with s.mu held.
func (s *bucketShard) evict(now int64) {
	oldestKey, oldest := "", int64(math.MaxInt64)
	freed := false
	for k, bk := range s.m {
		if now >= bk.fullAt {
			delete(s.m, k)
			freed = true
			continue
		}
		if bk.last < oldest {
			oldestKey, oldest = k, bk.last
		}
	}
	if !freed && oldestKey != "" {
		delete(s.m, oldestKey)
	}
}
