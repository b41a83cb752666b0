package overlay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Per-origin message budget of a gossip topic: each peer's messages (by
// origin, whoever forwards them) are validated at most MsgRate per second
// with bursts of MsgBurst; more are ignored — not validated, not
// forwarded, no penalty — and counted. A member announces a few times a
// minute and heartbeats every 30 s, so only a flood reaches the limit.
const (
	MsgRate  = 20
	MsgBurst = 100
	// maxBuckets bounds the per-origin state; a full table forgets idle
	// (refilled) buckets first, then arbitrary ones.
	maxBuckets = 4096
)

type bucket struct {
	tokens float64
	last   time.Time
}

// originLimiter is a token bucket per origin peer.
type originLimiter struct {
	mu      sync.Mutex
	buckets map[peer.ID]*bucket
	limited atomic.Uint64
	now     func() time.Time
}

func newOriginLimiter() *originLimiter {
	return &originLimiter{buckets: map[peer.ID]*bucket{}, now: time.Now}
}

// evict makes room in a full table (l.mu held): it forgets every refilled
// bucket (a full bucket is what a new one starts with), and if that freed
// nothing, an arbitrary eighth — so inserts stay O(1) amortized.
func (l *originLimiter) evict(now time.Time) {
	for k, v := range l.buckets {
		if now.Sub(v.last).Seconds()*MsgRate+v.tokens >= MsgBurst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxBuckets-maxBuckets/8 {
			break
		}
		delete(l.buckets, k)
	}
}

// allow spends one token of p's bucket; false (counted) if it is empty.
func (l *originLimiter) allow(p peer.ID) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[p]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.evict(now)
		}
		b = &bucket{tokens: MsgBurst, last: now}
		l.buckets[p] = b
	}
	b.tokens = min(MsgBurst, b.tokens+now.Sub(b.last).Seconds()*MsgRate)
	b.last = now
	if b.tokens < 1 {
		l.limited.Add(1)
		return false
	}
	b.tokens--
	return true
}
