package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Release ends the lease on graceful leave: it stops Run and publishes a
// released record with a higher Seq, so the address is free at once. The
// allocator cannot be run again afterwards.
func (a *Allocator) Release(ctx context.Context) error {
	a.mu.Lock()
	a.released = true
	stop, done := a.stopRun, a.runDone
	a.mu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("ipam: release: %w", ctx.Err())
		}
	}
	a.mu.Lock()
	c := a.claim
	a.mu.Unlock()
	now := time.Now()
	if c == nil || !now.Before(c.Expires) {
		a.drop(StateReleased)
		return nil
	}
	rel := *c
	rel.Released = true
	rel.Seq = a.nextSeq(c.Seq, now)
	rel.Signature = nil
	if err := rel.Sign(a.cfg.Key); err != nil {
		return fmt.Errorf("ipam: release %s: %w", c.IP, err)
	}
	if err := a.put(ctx, &rel); err != nil {
		return fmt.Errorf("ipam: release %s: %w", c.IP, err)
	}
	a.log.Info("released overlay address", "ip", c.IP)
	a.persist(&rel)
	a.drop(StateReleased)
	return nil
}

// drop forgets the current address and reports the change.
func (a *Allocator) drop(state string) {
	a.mu.Lock()
	had := a.current.IsValid()
	a.current, a.claim, a.state = netip.Addr{}, nil, state
	a.mu.Unlock()
	if had {
		a.emit(netip.Addr{})
	}
}

// nextSeq returns a Seq above prev and above every Seq this allocator used;
// it follows the wall clock (nanoseconds) so that it also increases across
// restarts that lost the state directory.
func (a *Allocator) nextSeq(prev uint64, now time.Time) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := max(prev+1, a.lastSeq+1)
	if ns := now.UnixNano(); ns > 0 && uint64(ns) > s {
		s = uint64(ns)
	}
	a.lastSeq = s
	return s
}

// persist saves c as the last lease; failures are logged, not fatal.
func (a *Allocator) persist(c *Claim) {
	l := leaseFromClaim(c)
	a.mu.Lock()
	a.last = l
	a.mu.Unlock()
	if a.cfg.StateDir == "" {
		return
	}
	if err := saveLease(a.cfg.StateDir, l); err != nil {
		a.log.Warn("could not persist the lease; a restart may pick another address", "err", err)
	}
}
