package sim

import (
	"container/heap"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Engine is a discrete-event scheduler in virtual time. It is not safe for
// concurrent use: everything in a simulation runs on its one loop.
type Engine struct {
	now   time.Duration
	epoch time.Time
	q     events
	seq   uint64
	ran   uint64
}

// NewEngine returns an engine at virtual time 0 (wall time epoch).
func NewEngine() *Engine {
	return &Engine{epoch: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

type event struct {
	at        time.Duration
	seq       uint64
	f         func()
	cancelled bool
	fired     bool
}

type events []*event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// Now is the virtual time since the start.
func (e *Engine) Now() time.Duration { return e.now }

// After schedules f after d (ties run in scheduling order).
func (e *Engine) After(d time.Duration, f func()) *event {
	if d < 0 {
		d = 0
	}
	e.seq++
	ev := &event{at: e.now + d, seq: e.seq, f: f}
	heap.Push(&e.q, ev)
	return ev
}

// RunUntil runs events up to virtual time t, then sets the clock to t.
func (e *Engine) RunUntil(t time.Duration) {
	for len(e.q) > 0 && e.q[0].at <= t {
		ev := heap.Pop(&e.q).(*event)
		if ev.cancelled {
			continue
		}
		e.now = ev.at
		ev.fired = true
		e.ran++
		ev.f()
	}
	if t > e.now {
		e.now = t
	}
}

// Run runs for d of virtual time.
func (e *Engine) Run(d time.Duration) { e.RunUntil(e.now + d) }

// Events returns how many events ran.
func (e *Engine) Events() uint64 { return e.ran }

// Clock is the engine as a swim.Clock.
func (e *Engine) Clock() swim.Clock { return engineClock{e} }

type engineClock struct{ e *Engine }

func (c engineClock) Now() time.Time { return c.e.epoch.Add(c.e.now) }

func (c engineClock) AfterFunc(d time.Duration, f func()) swim.Timer {
	return timer{c.e.After(d, f)}
}

type timer struct{ ev *event }

func (t timer) Stop() bool {
	if t.ev.fired || t.ev.cancelled {
		return false
	}
	t.ev.cancelled = true
	return true
}
