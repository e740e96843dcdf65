package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBucketsBurstAndRefill(t *testing.T) {
	b := NewBuckets(1024)
	t0 := time.Unix(1_700_000_000, 0)
	// 3 per minute: a burst of 3, then one token every 20 s.
	rate := 3.0 / 60
	for i := 0; i < 3; i++ {
		if ok, _ := b.Take("k", 3, rate, t0); !ok {
			t.Fatalf("request %d within the burst was refused", i+1)
		}
	}
	ok, wait := b.Take("k", 3, rate, t0)
	if ok {
		t.Fatal("4th request in the same instant was allowed")
	}
	if wait < 19*time.Second || wait > 20*time.Second {
		t.Fatalf("retry after %v, want about 20s", wait)
	}
	if ok, _ := b.Take("k", 3, rate, t0.Add(19*time.Second)); ok {
		t.Fatal("allowed before a token refilled")
	}
	if ok, _ := b.Take("k", 3, rate, t0.Add(20*time.Second)); !ok {
		t.Fatal("refused after a token refilled")
	}
	// Another key is independent.
	if ok, _ := b.Take("other", 3, rate, t0); !ok {
		t.Fatal("an unrelated key was limited")
	}
}

func TestBucketsBoundedMemory(t *testing.T) {
	b := NewBuckets(shardCount * 4) // 4 per shard
	t0 := time.Unix(1_700_000_000, 0)
	for i := 0; i < 10_000; i++ {
		b.Take(fmt.Sprint("key-", i), 10, 1, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := b.Len(); n > shardCount*4 {
		t.Fatalf("%d buckets held, bound is %d", n, shardCount*4)
	}
}

func TestBucketsEvictionKeepsActiveLimits(t *testing.T) {
	// One bucket per shard: a new key must evict. An exhausted bucket is not
	// full, so it survives eviction only while it is the newest; the key that
	// is exhausted must stay limited as long as room is made from idle keys.
	b := NewBuckets(shardCount * 2)
	t0 := time.Unix(1_700_000_000, 0)
	b.Take("hot", 1, 1.0/3600, t0) // exhausted for an hour
	// Idle keys that are full again immediately (huge rate) fill the shards.
	for i := 0; i < 5000; i++ {
		b.Take(fmt.Sprint("idle-", i), 1, 1e9, t0.Add(time.Duration(i+1)*time.Millisecond))
	}
	if ok, _ := b.Take("hot", 1, 1.0/3600, t0.Add(10*time.Second)); ok {
		t.Fatal("an exhausted bucket was evicted while full idle buckets could have been")
	}
}

func TestBucketsConcurrent(t *testing.T) {
	b := NewBuckets(1024)
	t0 := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if ok, _ := b.Take("shared", 50, 1e-9, t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("%d of 800 concurrent requests allowed, want exactly the burst of 50", allowed)
	}
}
