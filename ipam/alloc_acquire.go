package ipam

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/netip"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

var _ DHT = (*dht.IpfsDHT)(nil)

// errRejectedRecord marks a DHT read whose selected record this node's
// validator refuses.
var errRejectedRecord = errors.New("the DHT returned a claim this node rejects")

// scanResult is the outcome of one pass over the candidates.
type scanResult struct {
	won   bool
	held  int   // addresses found held by others
	err   error // DHT trouble that ended the pass early
	taken error // the requested address is held (fatal)
}

// acquire searches until it holds an address. It returns nil once assigned,
// a TakenError for a held requested address, or ctx's error.
func (a *Allocator) acquire(ctx context.Context) error {
	lastState := ""
	// DHT trouble right after start (an empty routing table while the node
	// still bootstraps) is retried quickly; a full range waits RetryInterval.
	errWait := min(250*time.Millisecond, a.cfg.RetryInterval)
	start := time.Now()
	for {
		res := a.scan(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var state string
		switch {
		case res.won:
			return nil
		case res.taken != nil && time.Since(start) < a.cfg.TakenGrace:
			state = StateAcquiring + ": " + res.taken.Error() + "; checking again"
			if state != lastState {
				a.log.Info("requested overlay address is held; checking again (a revocation list may still be on its way)", "err", res.taken, "for", a.cfg.TakenGrace)
			}
		case res.taken != nil:
			a.setState(StateTaken + ": " + res.taken.Error())
			a.log.Error("requested overlay address is taken", "err", res.taken)
			return res.taken
		case res.err == nil && res.held >= int(a.hosts.n):
			msg := fmt.Sprintf("CLADNet %s is full: %d of %d addresses claimed", a.name, res.held, a.hosts.n)
			state = StateFull + ": " + msg
			if state != lastState {
				a.log.Warn(msg+"; retrying", "every", a.cfg.RetryInterval)
			}
		case res.err != nil:
			state = StateAcquiring + ": retrying after: " + res.err.Error()
			lvl := slog.LevelWarn
			if state == lastState || errors.Is(res.err, kb.ErrLookupFailure) {
				lvl = slog.LevelDebug // repeated, or the DHT still bootstrapping
			}
			a.log.Log(ctx, lvl, "could not claim an overlay address; retrying", "err", res.err, "in", errWait)
		default:
			state = StateAcquiring + ": lost every race this round, retrying"
			a.log.Info("all free addresses were claimed concurrently; retrying", "in", a.cfg.RetryInterval)
		}
		a.setState(state)
		lastState = state
		wait := a.cfg.RetryInterval
		if res.err != nil {
			wait, errWait = errWait, min(2*errWait, a.cfg.RetryInterval)
		}
		if err := a.wait(ctx, wait); err != nil {
			return err
		}
	}
}

// wait sleeps for d, ending early on a CheckConflicts nudge.
func (a *Allocator) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-a.nudge:
	}
	return nil
}

// scan tries the candidates in preference order: the requested address only,
// or the last held address, then the hash of the peer ID into the range and
// onward. Addresses live members announce are skipped (counted as held).
func (a *Allocator) scan(ctx context.Context) scanResult {
	var res scanResult
	members := a.memberIPs()
	for ip := range a.candidateSeq() {
		if p, ok := members[ip]; ok && !a.cfg.Requested.IsValid() {
			a.log.Debug("skipping an address a live member announces", "ip", ip, "peer", p)
			res.held++
			continue
		}
		won, holder, err := a.tryClaim(ctx, ip)
		switch {
		case ctx.Err() != nil:
			return res
		case errors.Is(err, errRejectedRecord) && !a.cfg.Requested.IsValid():
			// The DHT's validator accepted what ours refuses (a node
			// registered without this CLADNet's spec?): skip the address.
			a.log.Warn("skipping an address with a claim this node cannot accept", "ip", ip, "err", err)
			continue
		case err != nil:
			res.err = err
			return res
		case won:
			res.won = true
			return res
		case holder != nil:
			res.held++
			if a.cfg.Requested.IsValid() {
				res.taken = &TakenError{Addr: ip, Holder: holder.holder()}
				return res
			}
		}
	}
	return res
}

func (a *Allocator) candidateSeq() iter.Seq[netip.Addr] {
	if a.cfg.Requested.IsValid() {
		return func(yield func(netip.Addr) bool) { yield(a.cfg.Requested) }
	}
	var pref netip.Addr
	a.mu.Lock()
	if a.last != nil {
		pref = a.last.addr()
	}
	a.mu.Unlock()
	return a.hosts.candidates(pref, a.hosts.hashIndex(a.self))
}

// memberIPs returns the announced addresses of other live members.
func (a *Allocator) memberIPs() map[netip.Addr]peer.ID {
	if a.cfg.Members == nil {
		return nil
	}
	m := make(map[netip.Addr]peer.ID)
	for ip, p := range a.cfg.Members.MemberIPs() {
		if p != a.self {
			m[ip] = p
		}
	}
	return m
}

// tryClaim claims ip: it reads the key, publishes its own claim unless
// another peer holds a live one, waits ConfirmDelay and confirms with a
// quorum read that the DHT selects its claim. holder is the better claim when
// it lost.
func (a *Allocator) tryClaim(ctx context.Context, ip netip.Addr) (won bool, holder *Claim, err error) {
	prev, err := a.read(ctx, ip)
	if err != nil {
		return false, nil, err
	}
	if prev.heldByOther(a.self) {
		return false, prev, nil
	}
	rec, err := a.newClaim(ip, prev)
	if err != nil {
		return false, nil, err
	}
	// A member holds one address: DHT nodes refuse a second live claim
	// (Store), so a lease still held on another address is released first.
	a.releaseOther(ctx, ip)
	// Remember the attempt first: if the node dies before confirming, a
	// restart asks for this address again instead of leaving the published
	// claim orphaned until its lease ends.
	a.persist(rec)
	if err := a.put(ctx, rec); err != nil {
		// kad-dht refuses locally when its own store holds a better record.
		if best, rerr := a.read(ctx, ip); rerr == nil && best.heldByOther(a.self) {
			return false, best, nil
		}
		return false, nil, err
	}
	if err := sleepCtx(ctx, a.cfg.ConfirmDelay); err != nil {
		return false, nil, err
	}
	best, err := a.read(ctx, ip)
	if err != nil {
		return false, nil, err
	}
	switch {
	case best == nil:
		return false, nil, fmt.Errorf("claim on %s is not in the DHT after publishing it", ip)
	case best.heldByOther(a.self):
		a.log.Info("lost a concurrent claim", "ip", ip, "to", best.holder(), "reason", whyBetter(best, rec))
		return false, best, nil
	case best.PeerID != rec.PeerID || best.Released:
		return false, nil, fmt.Errorf("claim on %s: the DHT selected an unexpected record (released %v, seq %d)", ip, best.Released, best.Seq)
	}
	a.assign(rec)
	if best.Seq > rec.Seq {
		// Another node with our key wrote meanwhile: keep our own record
		// (never adopt one we did not write) and renew above it at once.
		a.foreignWrite(best, "claimed")
	}
	return true, nil, nil
}

// heldByOther reports whether c is a live claim of another peer.
func (c *Claim) heldByOther(self peer.ID) bool {
	return c != nil && !c.Released && c.PeerID != self.String()
}

// newClaim builds and signs our claim on ip. It keeps the first-claim time of
// a lease we still hold on ip (found in the DHT or persisted), so a restart or
// a resumed VM keeps its precedence; a lapsed or released lease starts over.
func (a *Allocator) newClaim(ip netip.Addr, prev *Claim) (*Claim, error) {
	now := time.Now().UTC()
	claimedAt := now
	var prevSeq uint64
	if prev != nil && prev.PeerID == a.self.String() {
		prevSeq = prev.Seq
		if !prev.Released {
			claimedAt = prev.ClaimedAt
		}
	}
	a.mu.Lock()
	last := a.last
	a.mu.Unlock()
	if last != nil && last.addr() == ip {
		prevSeq = max(prevSeq, last.Seq)
		if last.live(now) && (prev == nil || prev.PeerID == a.self.String()) && last.ClaimedAt.Before(claimedAt) {
			claimedAt = last.ClaimedAt
		}
	}
	cert := a.certNow()
	if nb := cert.NotBefore; claimedAt.Before(nb) {
		claimedAt = nb.UTC()
	}
	c := &Claim{
		CladnetID: a.cfg.Spec.ID,
		IP:        ip.String(),
		PeerID:    a.self.String(),
		Cert:      cert,
		ClaimedAt: claimedAt,
		Seq:       a.nextSeq(prevSeq, now),
		Expires:   now.Add(a.cfg.Lease),
	}
	if err := c.Sign(a.cfg.Key); err != nil {
		return nil, err
	}
	return c, nil
}

// assign records a won claim: current address, persisted lease, change event.
func (a *Allocator) assign(c *Claim) {
	ip := c.Addr()
	a.mu.Lock()
	changed := a.current != ip
	if changed || a.assignedAt.IsZero() {
		a.assignedAt = time.Now()
	}
	a.current, a.claim, a.state = ip, c, StateAssigned
	a.renewAt = time.Now().Round(0).Add(a.cfg.RenewInterval)
	a.mu.Unlock()
	a.persist(c)
	if changed {
		a.log.Info("overlay address assigned", "ip", ip, "lease", a.cfg.Lease)
		a.emit(ip)
	}
}

// read returns the claim the DHT selects for ip after a quorum read, or nil
// when there is none.
func (a *Allocator) read(ctx context.Context, ip netip.Addr) (*Claim, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.OpTimeout)
	defer cancel()
	key := ClaimKey(a.cfg.Spec.ID, ip)
	start := time.Now()
	b, err := a.cfg.DHT.GetValue(ctx, key, dht.Quorum(a.quorum))
	if errors.Is(err, routing.ErrNotFound) {
		if v := a.cfg.DHTValidator; v != nil && v.RefusedSince(key, start) {
			a.mu.Lock()
			a.unknownReads++
			a.mu.Unlock()
			return nil, fmt.Errorf("read claim on %s: %w: the DHT holds only claims this node refuses (forged or planted?); not taking it as free", ip, errRejectedRecord)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claim on %s: %w", ip, err)
	}
	c, err := a.val.check(key, b, time.Now())
	if errors.Is(err, ErrClaimRevoked) || errors.Is(err, ErrExtraClaim) {
		return nil, nil // a revoked node's claim, or a member's extra one, counts as absent
	}
	if err != nil {
		return nil, fmt.Errorf("read claim on %s: %w: %w", ip, errRejectedRecord, err)
	}
	return c, nil
}

// put publishes c under its key.
func (a *Allocator) put(ctx context.Context, c *Claim) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.OpTimeout)
	defer cancel()
	if err := a.cfg.DHT.PutValue(ctx, ClaimKey(c.CladnetID, c.Addr()), b); err != nil {
		return fmt.Errorf("publish claim on %s: %w", c.IP, err)
	}
	return nil
}

// foreignWrite handles a record under our key with a higher Seq than our
// claim c: a node with this node's key — an older run releasing late, or a
// second live node with this identity (a cloned VM, a token used twice) —
// wrote it. The allocator never adopts it: it renews its own claim above it
// at once, so the record in the DHT is always one this node wrote (and only
// such a record is ever released).
func (a *Allocator) foreignWrite(best *Claim, what string) {
	a.log.Warn("another node with this node's key "+what+" our overlay address (a cloned VM or a token used twice?); renewing our own claim above it",
		"ip", best.IP, "seq", best.Seq, "released", best.Released)
	a.mu.Lock()
	a.lastSeq = max(a.lastSeq, best.Seq)
	a.renewAt = time.Time{}
	a.foreign++
	a.lastForeign = time.Now()
	a.mu.Unlock()
	a.CheckConflicts()
}

// ForeignWrites counts the records of our address written under this node's
// key by another node (see foreignWrite).
func (a *Allocator) ForeignWrites() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.foreign
}

// whyBetter explains why claim w beats claim l of another peer.
func whyBetter(w, l *Claim) string {
	switch {
	case w.ClaimedAt.Before(l.ClaimedAt):
		return fmt.Sprintf("its claim (%s) predates ours (%s); the earliest claim wins",
			w.ClaimedAt.Format(time.RFC3339Nano), l.ClaimedAt.Format(time.RFC3339Nano))
	case w.ClaimedAt.Equal(l.ClaimedAt):
		return "both claims have the same time; the lowest peer ID wins"
	default:
		return "its claim wins by the DHT's selection rule"
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
