package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Release ends the lease on graceful leave: it stops Run and publishes a
// released record with a higher Seq, so the address is free at once. It
// releases only a record this allocator wrote, and only while no other node
// with this node's key (a cloned VM, a token used twice) is seen using the
// address: not when such a node wrote a record of it within the last two
// conflict intervals (the two renew above each other, see foreignWrite), nor
// when a read-back (within half of ctx's time) finds a newer record than
// ours. The other node then keeps the address. The allocator cannot be run
// again afterwards.
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
	a.mu.Lock()
	recent := !a.lastForeign.IsZero() && time.Since(a.lastForeign) < 2*a.cfg.ConflictInterval
	a.mu.Unlock()
	if recent {
		a.log.Warn("not releasing the overlay address: another node with this node's key claimed it recently (a cloned VM or a token used twice?)", "ip", c.IP)
		a.drop(StateReleased)
		return nil
	}
	if other := a.newerForeign(ctx, c); other != nil {
		a.log.Warn("not releasing the overlay address: another node with this node's key holds a newer claim on it (a cloned VM or a token used twice?)",
			"ip", c.IP, "seq", other.Seq, "ours", c.Seq)
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

// releaseOther publishes a release of the persisted lease if it is live and
// on another address than ip (a move: the address was lost, or --ip
// changed), best effort: where another peer's claim won that key, the DHT
// keeps that one and refuses ours, which is as good.
func (a *Allocator) releaseOther(ctx context.Context, ip netip.Addr) {
	a.mu.Lock()
	last := a.last
	a.mu.Unlock()
	now := time.Now()
	if !last.live(now) || last.addr() == ip || last.PeerID != a.self.String() {
		return
	}
	rel := &Claim{CladnetID: last.CladnetID, IP: last.IP, PeerID: last.PeerID, Cert: a.certNow(),
		ClaimedAt: last.ClaimedAt, Seq: a.nextSeq(last.Seq, now), Expires: last.Expires, Released: true}
	if rel.ClaimedAt.Before(rel.Cert.NotBefore) || !rel.ClaimedAt.Before(rel.Expires) {
		return
	}
	if err := rel.Sign(a.cfg.Key); err != nil {
		return
	}
	if err := a.put(ctx, rel); err != nil {
		a.log.Debug("releasing the previous address before moving", "ip", last.IP, "err", err)
		return
	}
	a.log.Info("released the previous overlay address before claiming another", "old", last.IP, "new", ip)
}

// newerForeign reads our key and returns the record there if one with our
// peer ID but a higher Seq than our claim c is selected (someone else with
// our key wrote it). A failed read returns nil: the release goes ahead.
func (a *Allocator) newerForeign(ctx context.Context, c *Claim) *Claim {
	rctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, time.Until(d)/2)
		defer cancel()
	}
	best, err := a.read(rctx, c.Addr())
	if err != nil || best == nil || best.PeerID != c.PeerID || best.Seq <= c.Seq || best.Released {
		return nil
	}
	return best
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
