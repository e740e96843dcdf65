package ratelimit

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ccauthz/ccauthz/policy/manifest"
)

// BenchmarkLimiterCheck is the local limiter's cost on an allowed check: two
// bucket keys built and two token takes (per instance and per user).
func BenchmarkLimiterCheck(b *testing.B) {
	p := smallPlan(b)
	// Limits that never trip: the benchmark measures the allowed path.
	huge := &manifest.KindLimit{Limit: manifest.Limit{RequestsPerUnit: 1 << 30, Unit: "second"}}
	p.classes["chat"] = classLimits{perInstance: huge, perUser: huge}
	l := NewLimiter(DefaultMaxBuckets, time.Now)
	d := allowed("chat", "8f6e4253-58ce-42b9-869c-97f5c2287ad2", "W2HPShrOch8RMah8ZWsjrXtAXo+stqKsNX0exQ1rsQQ=", "medium")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if l.Check(p, d, "c").Limited {
			b.Fatal("limited")
		}
	}
}

// BenchmarkBucketsMemory reports the heap held per bucket when the limiter
// is full (DefaultMaxBuckets keys of a realistic length).
func BenchmarkBucketsMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		bk := NewBuckets(DefaultMaxBuckets)
		now := time.Unix(1_700_000_000, 0)
		for j := 0; j < DefaultMaxBuckets; j++ {
			key := "limit=per_user,backend=ai_gateway,rate_class=code_suggestions,seat_bucket=any,global_user_id=W2HPShrOch8RMah8ZWsjrXtAXo+stqK" + strconv.Itoa(j)
			bk.Take(key, 60, 1, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(bk.Len()), "bytes/bucket")
		b.ReportMetric(float64(bk.Len()), "buckets")
		runtime.KeepAlive(bk)
	}
}
