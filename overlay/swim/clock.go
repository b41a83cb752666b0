package swim

import "time"

// Clock is the time source of a Detector: the wall clock in the daemon,
// virtual time in the simulator.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, on a goroutine of its own (wall
	// clock) or the simulator's loop (virtual time).
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop cancels the call; it reports whether it did (false: f ran or
	// runs).
	Stop() bool
}

// WallClock is the real clock.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (WallClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
