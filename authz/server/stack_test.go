package server

import (
	"runtime"
	"sync"
	"testing"
)

// parkedStacks starts n goroutines that call reserveStack (or not), parks
// them, and returns how much the stacks in use grew meanwhile.
func parkedStacks(n int, reserve bool) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			if reserve {
				reserveStack()
			}
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	runtime.ReadMemStats(&after)
	close(release)
	done.Wait()
	if after.StackInuse < before.StackInuse {
		return 0
	}
	return after.StackInuse - before.StackInuse
}

// The compiler must keep reserveStack's frame (an elided frame would grow
// nothing): goroutines that called it hold stacks of at least that size,
// goroutines that did not hold far less.
func TestReserveStackGrowsTheStack(t *testing.T) {
	const n = 32
	plain := parkedStacks(n, false)
	reserved := parkedStacks(n, true)
	if reserved < n*checkStackReserve {
		t.Fatalf("%d goroutines after reserveStack hold %d bytes of stack more than before, want at least %d", n, reserved, n*checkStackReserve)
	}
	if plain >= n*checkStackReserve/4 {
		t.Fatalf("%d plain goroutines hold %d bytes of stack more than before: the measurement cannot tell reserveStack's effect", n, plain)
	}
	t.Logf("%d goroutines: %d KiB of stack plain, %d KiB after reserveStack", n, plain>>10, reserved>>10)
}

// The workers follow GOMAXPROCS on a small machine and stop at
// maxStreamWorkers on a large one, whose grown stacks would otherwise take
// a large share of the memory limit.
func TestStreamWorkersCapped(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	if got := streamWorkers(); got != 2*streamWorkersPerCPU {
		t.Errorf("GOMAXPROCS 2: %d stream workers, want %d", got, 2*streamWorkersPerCPU)
	}
	runtime.GOMAXPROCS(64)
	if got := streamWorkers(); got != maxStreamWorkers {
		t.Errorf("GOMAXPROCS 64: %d stream workers, want the cap %d", got, maxStreamWorkers)
	}
}
