package ipam

import (
	"context"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maintain keeps the assigned address: it renews the lease every
// RenewInterval and re-reads the claim every ConflictInterval and on
// CheckConflicts. It returns nil when the claim was lost to a better one (the
// caller searches again), a TakenError when that was the requested address,
// and ctx's error when ctx ends.
func (a *Allocator) maintain(ctx context.Context) error {
	t := time.NewTicker(min(a.cfg.ConflictInterval, a.cfg.RenewInterval))
	defer t.Stop()
	noted := make(map[peer.ID]netip.Addr) // members already logged as announcing our address
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-a.nudge:
		}
		if a.renewDue() {
			a.renew(ctx)
		}
		better := a.verify(ctx, noted)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if better != nil {
			return a.lose(better)
		}
	}
}

// renewDue compares wall-clock times, so a node resumed from suspension (when
// the monotonic clock stood still) renews at once.
func (a *Allocator) renewDue() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !time.Now().Round(0).Before(a.renewAt)
}

// renew publishes the claim again with a higher Seq and a fresh lease. A
// lease that lapsed (the node was suspended or cut off longer than the lease)
// starts over with a new ClaimedAt: whoever claimed the address meanwhile
// keeps it.
func (a *Allocator) renew(ctx context.Context) {
	a.mu.Lock()
	c := a.claim
	a.mu.Unlock()
	if c == nil {
		return
	}
	now := time.Now().UTC()
	rec := *c
	rec.Signature = nil
	rec.Cert = a.certNow() // a renewed certificate replaces the old one in the claim
	rec.Seq = a.nextSeq(c.Seq, now)
	rec.Expires = now.Add(a.cfg.Lease)
	if !now.Before(c.Expires) {
		a.log.Warn("lease lapsed before it could be renewed; claiming the address afresh", "ip", c.IP, "expired", c.Expires)
		rec.ClaimedAt = now
	}
	if err := rec.Sign(a.cfg.Key); err != nil {
		a.log.Error("could not sign the lease renewal", "ip", c.IP, "err", err)
		return
	}
	if err := a.put(ctx, &rec); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("could not renew the lease; retrying", "ip", c.IP, "err", err, "expires", c.Expires)
		}
		return
	}
	a.mu.Lock()
	if a.claim == c {
		a.claim = &rec
		a.renewAt = time.Now().Round(0).Add(a.cfg.RenewInterval)
	}
	a.mu.Unlock()
	a.persist(&rec)
	a.log.Debug("lease renewed", "ip", rec.IP, "expires", rec.Expires)
}

// verify re-reads our key with a quorum. It returns the better claim of
// another peer if there is one; otherwise it repairs missing or stale copies
// of our record and notes members that announce our address (they hold no
// better claim, so they will move).
func (a *Allocator) verify(ctx context.Context, noted map[peer.ID]netip.Addr) *Claim {
	a.mu.Lock()
	c, ip := a.claim, a.current
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	if better := a.betterMemberClaim(c, ip); better != nil {
		return better
	}
	best, err := a.read(ctx, ip)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("conflict check: DHT read failed", "ip", ip, "err", err)
		}
		return nil
	}
	switch {
	case best.heldByOther(a.self) && a.isBackdated(best):
		// Keep the address; the DHT keeps selecting the other record
		// until its lease ends, so our copies may not land.
	case best.heldByOther(a.self):
		return best
	case best == nil || best.PeerID != c.PeerID || best.Seq < c.Seq:
		// Our record is missing or stale where the read looked (storage
		// nodes left, or a partition healed): publish it again.
		if err := a.put(ctx, c); err != nil && ctx.Err() == nil {
			a.log.Debug("conflict check: republishing the claim failed", "ip", ip, "err", err)
		}
	case best.Seq > c.Seq && best.Released:
		a.foreignWrite(best, "released")
	case best.Seq > c.Seq:
		a.foreignWrite(best, "renewed")
	}
	for mip, p := range a.memberIPs() {
		if mip == ip && noted[p] != ip {
			noted[p] = ip
			a.log.Info("another member announces our address but holds no better claim; it has to move", "ip", ip, "peer", p)
		}
	}
	return nil
}

// isBackdated reports whether best, another peer's claim the DHT selected
// over ours, is dated by when we first saw it rather than by its own
// ClaimedAt (see Dated): it turned up after we had confirmed our claim,
// more than FreshWindow after the time it states. Such a claim does not
// make us move: it is counted and logged once.
func (a *Allocator) isBackdated(best *Claim) bool {
	now := time.Now()
	key := best.PeerID + "|" + best.IP + "|" + best.ClaimedAt.UTC().Format(time.RFC3339Nano)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sightings == nil || len(a.sightings) > 1024 {
		a.sightings = map[string]time.Time{}
	}
	first, seen := a.sightings[key]
	if !seen {
		first = now
		a.sightings[key] = first
	}
	_, backdated := Dated(best.ClaimedAt, first, !first.Before(a.assignedAt))
	if backdated && !seen {
		a.backdated++
		a.log.Warn("refusing a backdated claim on our overlay address: it turned up long after the time it states (a member forging an old claim, or the far side of a long partition); keeping the address",
			"ip", best.IP, "claimant", best.holder(), "claimedAt", best.ClaimedAt.Format(time.RFC3339), "firstSeen", first.UTC().Format(time.RFC3339))
	}
	return backdated
}

// betterMemberClaim looks for another member announcing ip with a verified
// claim that beats ours by Better (the members table dates backdated claims
// by when it first saw them).
func (a *Allocator) betterMemberClaim(c *Claim, ip netip.Addr) *Claim {
	cv, ok := a.cfg.Members.(ClaimView)
	if !ok {
		return nil
	}
	ours := MemberClaim{IP: ip, Peer: a.self, ClaimedAt: c.ClaimedAt, Bound: c.Bound()}
	for _, mc := range cv.MemberClaims() {
		if mc.IP != ip || mc.Peer == a.self || mc.ClaimedAt.IsZero() {
			continue
		}
		if Better(mc, ours) {
			return &Claim{CladnetID: c.CladnetID, IP: ip.String(), PeerID: mc.Peer.String(), ClaimedAt: mc.ClaimedAt}
		}
	}
	return nil
}

// lose gives up the address after a better claim was found.
func (a *Allocator) lose(better *Claim) error {
	a.mu.Lock()
	c, ip := a.claim, a.current
	a.mu.Unlock()
	reason := whyBetter(better, c)
	if a.cfg.Requested.IsValid() {
		err := &TakenError{Addr: ip, Holder: better.holder()}
		a.log.Error("requested overlay address lost to a better claim", "ip", ip, "holder", better.holder(), "reason", reason)
		a.drop(StateTaken + ": " + err.Error())
		return err
	}
	a.log.Warn("overlay address lost to a better claim; moving to a new address", "ip", ip, "holder", better.holder(), "reason", reason)
	a.drop(StateConflictMoving + ": lost " + ip.String() + " to " + better.holder())
	return nil
}
