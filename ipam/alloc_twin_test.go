package ipam

import (
	"context"
	"testing"
	"time"
)

// TestAllocatorTwinNeverReleasesOthersClaim: two allocators with one key (a
// cloned VM) on one DHT. The first keeps its own record in the DHT, never
// adopting the copy's, and the copy's release does not free the address the
// first one holds.
func TestAllocatorTwinNeverReleasesOthersClaim(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	d := newMemDHT(o.Spec)
	me := newIdentity(t, o, "vm1")
	orig, err := NewAllocator(fastConfig(o, me, d, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, orig)
	ip := waitChange(t, orig)

	cfg := fastConfig(o, me, d, t.TempDir())
	cfg.Logger = testLogger(nil)
	twin, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, twin)
	if got := waitChange(t, twin); got != ip {
		t.Fatalf("the copy took %s, want the shared identity's %s", got, ip)
	}
	// The original sees the copy's newer record and renews above it.
	waitFor(t, 5*time.Second, "the original renewing above the copy's record", func() bool {
		return orig.ForeignWrites() > 0 && d.get(t, o.Spec, ip).Seq == orig.claimSeq()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := twin.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if c := d.get(t, o.Spec, ip); c == nil || c.Released {
		t.Fatalf("after the copy's release the DHT holds %+v, want the original's live claim", c)
	}
	if orig.Current() != ip {
		t.Fatalf("original lost its address: %s", orig.Current())
	}
}

// claimSeq is the Seq of the allocator's current claim (0 if none).
func (a *Allocator) claimSeq() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.claim == nil {
		return 0
	}
	return a.claim.Seq
}
