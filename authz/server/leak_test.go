package server

import (
	"runtime"
	"testing"
	"time"
)

// goroutineBaseline records the goroutines alive now; its result asserts,
// after a server stopped, that none it started outlives it. Goroutines wind
// down asynchronously (a closed connection's reader, a timer), so the
// assertion waits up to 5 s for the count to settle back before it fails
// with every stack. Tests using it must not run in parallel.
func goroutineBaseline(t *testing.T) (assertNoLeak func()) {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after the server stopped:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	}
}
