package forwardtest

import (
	"runtime"
	"testing"
	"time"
)

// WaitGoroutines waits up to 5 seconds for the number of goroutines to
// drop to baseline (taken with runtime.NumGoroutine before the test
// started its goroutines) and otherwise fails t with all goroutine stacks.
func WaitGoroutines(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d > baseline %d\n%s", runtime.NumGoroutine(), baseline,
				buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Eventually polls cond every 2ms until it holds, and fails t (Fatalf,
// naming what) if it does not within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
