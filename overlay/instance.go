package overlay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// One identity, twice: a join token started on two hosts (a cloned VM image
// with a baked-in token) makes two live nodes with one peer ID. libp2p cannot
// tell them apart — they share the peer ID, so gossipsub drops each one's
// messages at the other as "from ourselves", and fellow members hold
// connections to both under one peer — so every start picks a random
// instance ID, carried in its announcements and heartbeats.
//
// A fellow member (a witness) that sees a member's instance change, or a
// second connection to a member, asks each of its connections to that peer
// "which instance are you?" over the
// instance protocol; each answer is signed with the node key and carries the
// time it was signed. Two answers with different instance IDs prove two live
// nodes. (The gossip of the node that joined second rarely reaches anyone:
// gossipsub keeps one stream per peer ID, so its announcements cannot be
// relied on; its connections can.) The witness then hands each of them the others' signed answers; a
// node verifies them with its own key (so no member can forge or replay
// one: the answer must be signed after this instance started), and the
// instance that started later stops with ErrIdentityConflict, without a
// leave or an address release (both would end the other's membership and
// claim); the earlier one keeps running and logs a warning.

// instanceProofDomain separates the signed instance answers from every other
// signature made with the node key.
const instanceProofDomain = "cbnode-instance-v1\n"

// Witness timing.
const (
	instanceTimeout = 5 * time.Second
	// proofMaxAge bounds how old a signed answer may be when it is acted on.
	proofMaxAge = 2 * time.Minute
	// witnessRetry is the pause before probing a member again whose new
	// instance did not answer yet (no connection to it yet), and
	// witnessTries how often that is done.
	witnessRetry = 2 * time.Second
	witnessTries = 10
	// conflictRecheck is how often a witness re-probes a member while two of
	// its instances answer.
	conflictRecheck = 3 * time.Second
	maxProofs       = 8
)

func instanceProtocol(cladnetID string) protocol.ID {
	return protocol.ID("/cbnode/cladnet/" + cladnetID + "/instance/1.0.0")
}

// ErrIdentityConflict is matched (errors.Is) by the error that ends a member
// because another node with its identity started earlier.
var ErrIdentityConflict = errors.New("another node is running with this identity")

// IdentityConflict describes a second live node with this node's peer ID.
type IdentityConflict struct {
	Peer peer.ID
	// Other is the other node's instance, the time it started and where the
	// witness reached it.
	OtherInstance string
	OtherStarted  time.Time
	OtherAddr     string
	// Newer says this node started later: it has to stop.
	Newer bool
	// Witness is the member that saw both.
	Witness peer.ID
}

func (c *IdentityConflict) Error() string {
	at := ""
	if c.OtherAddr != "" {
		at = ", at " + c.OtherAddr
	}
	return fmt.Sprintf("%s (peer %s%s, started %s): a cloned VM or a token used twice; stop the other or issue a new token (cbnode cladnet issue)",
		ErrIdentityConflict, c.Peer, at, c.OtherStarted.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrIdentityConflict) true.
func (c *IdentityConflict) Is(target error) bool { return target == ErrIdentityConflict }

// newInstanceID is a random 64-bit instance ID in hex.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// instanceProof is a node's signed answer to "which instance are you?".
type instanceProof struct {
	CladnetID string    `json:"cladnetId"`
	PeerID    string    `json:"peerId"`
	Instance  string    `json:"instance"`
	Started   time.Time `json:"started"`
	Time      time.Time `json:"time"` // when it was signed
	Sig       []byte    `json:"sig,omitempty"`
}

func (p *instanceProof) signedBytes() ([]byte, error) {
	body := *p
	body.Sig = nil
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return append([]byte(instanceProofDomain), b...), nil
}

func (p *instanceProof) sign(k crypto.PrivKey) error {
	b, err := p.signedBytes()
	if err != nil {
		return fmt.Errorf("sign instance proof: %w", err)
	}
	if p.Sig, err = k.Sign(b); err != nil {
		return fmt.Errorf("sign instance proof: %w", err)
	}
	return nil
}

// verify checks that the proof was signed by peer id's key for cladnetID.
func (p *instanceProof) verify(cladnetID string, id peer.ID) error {
	if p.CladnetID != cladnetID || p.PeerID != id.String() || p.Instance == "" || len(p.Instance) > 64 || p.Started.IsZero() {
		return errors.New("instance proof: wrong CLADNet, peer or fields")
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("instance proof: %w", err)
	}
	b, err := p.signedBytes()
	if err != nil {
		return err
	}
	if ok, err := pub.Verify(b, p.Sig); err != nil || !ok {
		return errors.New("instance proof: signature does not verify")
	}
	return nil
}

// seenInstance is a proof with the address the witness reached it at.
type seenInstance struct {
	Proof instanceProof `json:"proof"`
	Addr  string        `json:"addr,omitempty"` // the witness's view; unsigned, for messages only
}

// instanceRequest is what a witness sends: nothing to ask, or the other
// instances it found with the same peer ID.
type instanceRequest struct {
	Others []seenInstance `json:"others,omitempty"`
}

// ownProof signs a fresh answer.
func (m *Membership) ownProof() (*instanceProof, error) {
	p := &instanceProof{CladnetID: m.cfg.Spec.ID, PeerID: m.self.String(), Instance: m.instance,
		Started: m.started, Time: time.Now().UTC()}
	if err := p.sign(m.cfg.Key); err != nil {
		return nil, err
	}
	return p, nil
}

// serveInstance answers a witness, and acts on the other instances it names.
func (m *Membership) serveInstance(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(instanceTimeout))
	var req instanceRequest
	if err := json.NewDecoder(io.LimitReader(s, 16<<10)).Decode(&req); err != nil || len(req.Others) > maxProofs {
		_ = s.Reset()
		return
	}
	// Reports need not come from a member we know: the newer node's gossip
	// rarely works (see above), so it may know no member yet. The proofs
	// verify on their own.
	if len(req.Others) > 0 {
		m.consider(s.Conn().RemotePeer(), req.Others, time.Now())
	}
	p, err := m.ownProof()
	if err != nil {
		_ = s.Reset()
		return
	}
	_ = json.NewEncoder(s).Encode(p)
}

// consider checks the instances a witness reported and reports a conflict
// (at most once per other instance).
func (m *Membership) consider(witness peer.ID, others []seenInstance, now time.Time) {
	for _, o := range others {
		c, err := m.judge(o, now)
		if err != nil {
			m.log.Debug("instance report refused", "witness", witness, "err", err)
			continue
		}
		if c == nil {
			continue
		}
		c.Witness = witness
		m.conflictMu.Lock()
		_, seen := m.conflicts[c.OtherInstance]
		if !seen {
			m.conflicts[c.OtherInstance] = *c
		}
		m.conflictMu.Unlock()
		if seen {
			continue
		}
		if c.Newer {
			m.log.Error("identity conflict: stopping this node", "err", c.Error(), "witness", witness)
		} else {
			m.log.Warn("identity conflict: another node runs with this node's identity and started later; it is told to stop, this node keeps its address",
				"peer", m.self, "other_instance", c.OtherInstance, "other_started", c.OtherStarted, "other_addr", c.OtherAddr, "witness", witness)
			m.repairAfterTwin()
		}
		if f := m.cfg.OnIdentityConflict; f != nil {
			f(c)
		}
	}
}

// judge verifies one reported instance: it must be signed with our own key,
// be another instance than ours, and have been signed after this instance
// started (so it was alive at the same time as we are) and recently. It
// returns nil, nil for our own instance.
func (m *Membership) judge(o seenInstance, now time.Time) (*IdentityConflict, error) {
	p := o.Proof
	if err := p.verify(m.cfg.Spec.ID, m.self); err != nil {
		return nil, err
	}
	if p.Instance == m.instance {
		return nil, nil
	}
	if !p.Time.After(m.started) {
		return nil, fmt.Errorf("instance %s answered at %s, before this instance started (%s)", p.Instance, p.Time.Format(time.RFC3339Nano), m.started.Format(time.RFC3339Nano))
	}
	if now.Sub(p.Time) > proofMaxAge || p.Time.Sub(now) > proofMaxAge {
		return nil, fmt.Errorf("instance %s answered at %s, not recent", p.Instance, p.Time.Format(time.RFC3339))
	}
	newer := p.Started.Before(m.started) || (p.Started.Equal(m.started) && p.Instance < m.instance)
	return &IdentityConflict{Peer: m.self, OtherInstance: p.Instance, OtherStarted: p.Started,
		OtherAddr: addrHost(o.Addr), Newer: newer}, nil
}

// addrHost shortens a multiaddr to its IP (or returns it unchanged).
func addrHost(s string) string {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return s
	}
	if ip, err := manet.ToIP(a); err == nil {
		if addr, ok := netip.AddrFromSlice(ip); ok {
			return addr.Unmap().String()
		}
	}
	return s
}

// repairAfterTwin makes the older instance's own announcement current again
// everywhere: the newer one's announcements (higher sequence numbers) have
// replaced it in the members tables.
func (m *Membership) repairAfterTwin() {
	m.fullBeats.Store(fullEvery)
	m.Republish()
}

// IdentityConflicts returns the conflicts found so far (other instances of
// this node's peer ID), oldest instance first.
func (m *Membership) IdentityConflicts() []IdentityConflict {
	m.conflictMu.Lock()
	defer m.conflictMu.Unlock()
	out := make([]IdentityConflict, 0, len(m.conflicts))
	for _, c := range m.conflicts {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OtherStarted.Before(out[j].OtherStarted) })
	return out
}

// Instance returns this node's instance ID and start time.
func (m *Membership) Instance() (string, time.Time) { return m.instance, m.started }

// noteInstance records the instance a member's message carries; a change
// (a restart, or a second node with that identity) has the witness probe it.
func (m *Membership) noteInstance(id peer.ID, inst string) {
	if inst == "" || id == m.self {
		return
	}
	m.instMu.Lock()
	old, known := m.lastInst[id]
	m.lastInst[id] = inst
	if len(m.lastInst) > maxSyncMembers {
		clear(m.lastInst)
	}
	m.instMu.Unlock()
	if known && old != inst {
		select {
		case m.witnessCh <- id:
		default:
		}
	}
}

// connected is the network notifiee: a further connection to a member (a
// redial, a second transport, or a second node with its identity) has the
// witness probe it. It runs on the swarm's goroutine: it must not block.
func (m *Membership) connected(n network.Network, c network.Conn) {
	id := c.RemotePeer()
	if id == m.self || len(n.ConnsToPeer(id)) < 2 || !m.IsMember(id) {
		return
	}
	select {
	case m.witnessCh <- id:
	default:
	}
}

func (m *Membership) announcedInstance(id peer.ID) string {
	m.instMu.Lock()
	defer m.instMu.Unlock()
	return m.lastInst[id]
}

// witnessLoop probes members whose instance changed.
func (m *Membership) witnessLoop(ctx context.Context) {
	defer m.wg.Done()
	pending := map[peer.ID]*witnessState{}
	tick := time.NewTicker(witnessRetry / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-m.witnessCh:
			if _, ok := pending[id]; !ok {
				pending[id] = &witnessState{}
			}
			pending[id].at = time.Time{}
		case <-tick.C:
		}
		now := time.Now()
		for id, d := range pending {
			if now.Before(d.at) || ctx.Err() != nil {
				continue
			}
			res := m.witness(ctx, id, d)
			if res != witnessConflict && d.conflict() {
				// One instance is left. Our row for it may hold the other's
				// announcement (a higher sequence number), and their
				// gossip may have suffered: pull its table, which carries
				// its own announcement and hands it ours.
				if err := m.pullTable(ctx, id); err != nil {
					m.log.Debug("members table pull after an identity conflict", "peer", id, "err", err)
				}
				delete(pending, id)
				continue
			}
			switch res {
			case witnessConflict:
				d.at, d.tries = time.Now().Add(conflictRecheck), 0
			case witnessWaiting:
				d.tries++
				if d.tries >= witnessTries {
					delete(pending, id)
				} else {
					d.at = time.Now().Add(witnessRetry)
				}
			default:
				delete(pending, id)
			}
		}
	}
}

// witnessState is what a witness remembers of one member it probes.
type witnessState struct {
	at    time.Time
	tries int
	// seen holds every instance that answered since two did (by instance),
	// told those that were handed the others' answers.
	seen map[string]seenInstance
	told map[string]bool
}

func (d *witnessState) conflict() bool { return len(d.seen) > 1 }

type witnessResult int

const (
	witnessDone     witnessResult = iota // one instance, the announced one
	witnessWaiting                       // the announced instance did not answer (yet)
	witnessConflict                      // two or more instances answered
)

// witness asks every connection to id which instance it reaches and, when
// they are different ones, tells each the others: the one that started first
// (it keeps running) before the others, which stop on being told. An
// instance that could not be told is told on a later round, even when it is
// the only one left by then, while the others' answers are recent.
func (m *Membership) witness(ctx context.Context, id peer.ID, d *witnessState) witnessResult {
	if !m.IsMember(id) {
		return witnessDone
	}
	type reached struct {
		conn network.Conn
		seen seenInstance
	}
	var found []reached
	distinct := map[string]bool{}
	for _, c := range m.cfg.Node.Host.Network().ConnsToPeer(id) {
		p, err := m.askInstance(ctx, c, nil)
		if err != nil {
			m.log.Debug("instance probe failed", "peer", id, "addr", c.RemoteMultiaddr(), "err", err)
			continue
		}
		if err := p.verify(m.cfg.Spec.ID, id); err != nil {
			m.log.Debug("instance probe: bad answer", "peer", id, "err", err)
			continue
		}
		found = append(found, reached{c, seenInstance{Proof: *p, Addr: c.RemoteMultiaddr().String()}})
		distinct[p.Instance] = true
	}
	if len(distinct) > 1 || d.conflict() {
		if d.seen == nil {
			d.seen, d.told = map[string]seenInstance{}, map[string]bool{}
		}
		for _, r := range found {
			d.seen[r.seen.Proof.Instance] = r.seen
		}
	}
	if len(distinct) > 1 {
		m.log.Warn("two live nodes use one member's identity (a cloned VM or a token used twice?); telling them", "peer", id, "instances", len(distinct))
	}
	if !d.conflict() {
		if want := m.announcedInstance(id); want != "" && !distinct[want] {
			return witnessWaiting
		}
		return witnessDone
	}
	sort.SliceStable(found, func(i, j int) bool {
		return found[i].seen.Proof.Started.Before(found[j].seen.Proof.Started)
	})
	now := time.Now()
	othersOf := func(inst string) []seenInstance {
		var others []seenInstance
		for other, s := range d.seen {
			if other != inst && now.Sub(s.Proof.Time) < proofMaxAge/2 && len(others) < maxProofs {
				others = append(others, s)
			}
		}
		return others
	}
	for _, r := range found {
		inst := r.seen.Proof.Instance
		if d.told[inst] {
			continue
		}
		others := othersOf(inst)
		if len(others) == 0 {
			continue
		}
		if _, err := m.askInstance(ctx, r.conn, others); err != nil {
			m.log.Debug("instance report failed", "peer", id, "addr", r.conn.RemoteMultiaddr(), "err", err)
			continue
		}
		d.told[inst] = true
	}
	if len(distinct) > 1 {
		return witnessConflict
	}
	// An instance not told yet — its probe failed this round, its
	// connection may be down for a moment — is tried again while the
	// others' answers are recent (the one that stays would otherwise never
	// learn why its twin stopped).
	for inst := range d.seen {
		if !d.told[inst] && len(othersOf(inst)) > 0 {
			return witnessConflict
		}
	}
	return witnessDone
}

// askInstance runs one instance exchange on connection c.
func (m *Membership) askInstance(ctx context.Context, c network.Conn, others []seenInstance) (*instanceProof, error) {
	ctx, cancel := context.WithTimeout(ctx, instanceTimeout)
	defer cancel()
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-instance"))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	pid := instanceProtocol(m.cfg.Spec.ID)
	if err := msmux.SelectProtoOrFail(pid, s); err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.SetProtocol(pid)
	if err := json.NewEncoder(s).Encode(instanceRequest{Others: others}); err != nil {
		_ = s.Reset()
		return nil, err
	}
	var p instanceProof
	if err := json.NewDecoder(io.LimitReader(s, 4<<10)).Decode(&p); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return &p, nil
}
