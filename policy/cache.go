package policy

import (
	"container/list"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// decisionCache is a bounded LRU of decisions. Entries are never mutated
// after insertion; Decide hands out copies.
type decisionCache struct {
	mu      sync.Mutex
	cap     int
	entries map[string]*list.Element
	order   *list.List // front = most recently used
}

type cacheEntry struct {
	key string
	d   Decision
}

func newDecisionCache(capacity int) *decisionCache {
	return &decisionCache{cap: capacity, entries: make(map[string]*list.Element, min(capacity, 1024)), order: list.New()}
}

func (c *decisionCache) get(key string) (Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return Decision{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).d, true
}

// put stores d and reports whether an entry was evicted to make room.
func (c *decisionCache) put(key string, d Decision) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value.(*cacheEntry).d = d
		c.order.MoveToFront(el)
		return false
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, d: d})
	if c.order.Len() <= c.cap {
		return false
	}
	last := c.order.Back()
	c.order.Remove(last)
	delete(c.entries, last.Value.(*cacheEntry).key)
	return true
}

func (c *decisionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

type counters struct {
	hits, misses, evictions, uncacheable atomic.Uint64
	// routeDisagreements counts decisions not cached because the Rego
	// matched another route than the Go matcher that keyed them
	// (routeKeys.agrees); a differential test keeps it at zero.
	routeDisagreements atomic.Uint64
}

// clone copies the decision's maps and slices so a caller may modify its copy
// without touching the cached one (RateLimit.Limit, immutable, is shared).
func (d Decision) clone() Decision {
	out := d
	out.Body = maps.Clone(d.Body)
	out.UnitPrimitives = slices.Clone(d.UnitPrimitives)
	out.Headers = maps.Clone(d.Headers)
	out.HeadersToRemove = slices.Clone(d.HeadersToRemove)
	out.ResponseHeaders = maps.Clone(d.ResponseHeaders)
	out.RateLimit.Entries = maps.Clone(d.RateLimit.Entries)
	// RateLimit.Limit is shared: it is immutable (see RateLimit).
	return out
}
