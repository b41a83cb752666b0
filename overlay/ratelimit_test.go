package overlay

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestOriginLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newOriginLimiter()
	l.now = func() time.Time { return now }
	allowed := 0
	for range 1000 {
		if l.allow("a") {
			allowed++
		}
	}
	if allowed != MsgBurst {
		t.Fatalf("burst: %d allowed, want %d", allowed, MsgBurst)
	}
	if !l.allow("b") {
		t.Fatal("another origin shares a's budget")
	}
	now = now.Add(time.Second)
	allowed = 0
	for range 1000 {
		if l.allow("a") {
			allowed++
		}
	}
	if allowed != MsgRate {
		t.Fatalf("after 1 s: %d allowed, want %d", allowed, MsgRate)
	}
	if l.limited.Load() != 2000-MsgBurst-MsgRate {
		t.Fatalf("limited = %d", l.limited.Load())
	}
	for i := range maxBuckets * 2 {
		l.allow(peer.ID(rune(i + 1000)))
	}
	if len(l.buckets) > maxBuckets {
		t.Fatalf("%d buckets, bound %d", len(l.buckets), maxBuckets)
	}
}

// Attack (L5, message rate): a peer floods a topic with 600 messages its
// validator would accept. Before: every one was validated and forwarded.
// After: at most MsgBurst + MsgRate per second of its messages are.
func TestAttackMessageFloodRateLimited(t *testing.T) {
	boot := startBootstrap(t)
	a, flooder := plainNode(t, boot), plainNode(t, boot)
	var validated atomic.Int64
	gt, err := joinTopic(a.PubSub, "/cbnode/test/flood", func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult {
		validated.Add(1)
		return pubsub.ValidationAccept
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { gt.evts.Cancel(); gt.sub.Cancel(); gt.topic.Close() }()
	connect(t, flooder, a)
	topic, err := flooder.PubSub.Join("/cbnode/test/flood")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	forwardtestEventually(t, 5*time.Second, func() bool { return len(topic.ListPeers()) > 0 })
	start := time.Now()
	for i := range 600 {
		if err := topic.Publish(context.Background(), []byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the counts settle (the flooder's own queue drops some).
	last, still := int64(-1), 0
	forwardtestEventually(t, 20*time.Second, func() bool {
		n := validated.Load() + int64(gt.rate.limited.Load())
		if n == last {
			still++
		} else {
			last, still = n, 0
		}
		return still >= 20 // 1 s unchanged
	})
	if gt.rate.limited.Load() == 0 {
		t.Fatalf("nothing rate-limited: %d validated", validated.Load())
	}
	bound := int64(MsgBurst + MsgRate*time.Since(start).Seconds() + 1)
	if n := validated.Load(); n > bound {
		t.Fatalf("%d of 2000 messages validated, bound %d", n, bound)
	}
	t.Logf("600 flooded messages: %d validated, %d rate-limited (bound %d)", validated.Load(), gt.rate.limited.Load(), bound)
}
