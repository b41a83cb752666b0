package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"sort"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Liveness without broadcast: the members' failure detector and anti-entropy
// (overlay/swim) run over direct libp2p streams, one message per stream
// (a request and its answer share one). Only a confirmed death is spread,
// on the topic, as a DeathNotice signed by the member that detected it; the
// dead member refutes it — as it refutes a suspicion — by announcing itself
// with a newer sequence number. Membership changes (join, leave, address,
// cloud facts, state) stay signed announcements on the topic; nothing is
// re-announced periodically.

// KindDeath is the kind of a DeathNotice.
const KindDeath = "death"

const (
	swimTimeout = 5 * time.Second
	// maxSwimMessage bounds a swim message on the wire (a push of
	// swim.MaxRecords announcements).
	maxSwimMessage = 16 << 20
	// maxDeathSize bounds a death notice on the wire.
	maxDeathSize = 1 << 10
	// departedFor is how long a confirmed death is remembered (its notice
	// handed on by anti-entropy, its member probed now and then).
	departedFor = 10 * time.Minute
)

func swimProtocol(cladnetID string) protocol.ID {
	return protocol.ID("/cbnode/cladnet/" + cladnetID + "/swim/1.0.0")
}

// DeathNotice says that member PeerID, last announced with sequence
// number Seq, failed its probes: signed by the member that detected it
// (By), so it verifies wherever it travels.
type DeathNotice struct {
	Kind      string    `json:"kind"`
	PeerID    string    `json:"peerId"`
	Seq       uint64    `json:"seq"`
	By        string    `json:"by"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig,omitempty"`
}

const deathDomain = "cbnode-death-v1\n"

func (d *DeathNotice) signedBytes() ([]byte, error) {
	body := *d
	body.Signature = nil
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return append([]byte(deathDomain), b...), nil
}

// parseDeath decodes and verifies a death notice: shape, the detector's
// signature, and that the detector is a live member here (or this node).
func (m *Membership) parseDeath(data []byte, now time.Time) (*DeathNotice, peer.ID, error) {
	if len(data) > maxDeathSize {
		return nil, "", reject(RejectSize, "death notice of %d bytes, limit %d", len(data), maxDeathSize)
	}
	var d DeathNotice
	if err := json.Unmarshal(data, &d); err != nil || d.Kind != KindDeath || d.Seq == 0 {
		return nil, "", reject(RejectMalformed, "death notice: %v", err)
	}
	dead, err1 := peer.Decode(d.PeerID)
	by, err2 := peer.Decode(d.By)
	if err1 != nil || err2 != nil || dead == by {
		return nil, "", reject(RejectMalformed, "death notice: peer IDs %q, %q", d.PeerID, d.By)
	}
	if d.Time.After(now.Add(time.Minute)) || d.Time.Before(now.Add(-departedFor)) {
		return nil, "", reject(RejectField, "death notice dated %s", d.Time.Format(time.RFC3339))
	}
	// A notice of this node's own death counts whoever signed it: it is
	// answered by a newer announcement (rate-limited), nothing worse — and
	// a node cut off when it was declared dead may know its detector not.
	if by != m.self && dead != m.self && !m.known(by) {
		return nil, "", reject(RejectSender, "death notice by %s, not a member here", by)
	}
	pub, err := by.ExtractPublicKey()
	if err != nil {
		return nil, "", reject(RejectSignature, "detector's peer ID carries no public key: %v", err)
	}
	b, err := d.signedBytes()
	if err != nil {
		return nil, "", reject(RejectMalformed, "%v", err)
	}
	if ok, err := pub.Verify(b, d.Signature); err != nil || !ok {
		return nil, "", reject(RejectSignature, "death notice signature does not verify")
	}
	return &d, dead, nil
}

// deathMessage is a validated death notice on the topic (the raw notice).
type deathMessage = []byte

// validateDeath is the gossipsub validator of death notices: signed by
// their publisher, a member here.
func (m *Membership) validateDeath(from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	d, _, err := m.parseDeath(msg.Data, time.Now())
	if err != nil {
		m.countRejectErr(err)
		var ve *ValidationError
		if errors.As(err, &ve) && ve.Reason == RejectSender {
			return pubsub.ValidationIgnore // a member we have not met yet
		}
		return pubsub.ValidationReject
	}
	if d.By != from.String() {
		m.countReject(RejectSender)
		return pubsub.ValidationReject
	}
	msg.ValidatorData = deathMessage(msg.Data)
	return pubsub.ValidationAccept
}

// liveness is the membership's failure detector with its libp2p transport
// and its view of the members table.
type liveness struct {
	m   *Membership
	det *swim.Detector

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // sends in flight

	mu     sync.Mutex
	ids    []string // snapshot for NumMembers/MemberAt
	deaths map[peer.ID]departedMember
	// lost holds the members whose last connection
	// ended other than by an idle close, and when: they stay probe
	// targets for lostProbeFor (a crashed member's connections end at
	// once — the kernel closes them — and it must still be probed).
	lost map[peer.ID]time.Time
	// idleClosed are the members whose connections this node is closing
	// as idle (IdleClosed): their disconnect is no loss.
	idleClosed map[peer.ID]time.Time
}

// lostProbeFor is how long a member whose connection ended stays a probe
// target with lazy tunnels.
const lostProbeFor = 30 * time.Second

// disconnected is the network notifiee: a member's last
// connection ending (unless idle-closed) keeps it a probe target a while.
// It runs on the swarm's goroutine: it must not block.
func (m *Membership) disconnected(n network.Network, c network.Conn) {
	id := c.RemotePeer()
	l := m.detector
	if l == nil || id == m.self || len(n.ConnsToPeer(id)) > 0 || !m.IsMember(id) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.idleClosed[id]; ok && now.Sub(at) < 10*time.Second {
		delete(l.idleClosed, id)
		return
	}
	if len(l.lost) >= maxSyncMembers {
		clear(l.lost)
	}
	l.lost[id] = now
}

// IdleClosed tells the membership that this node is closing its
// connections to p because its lazy tunnel went idle (overlay.Link's
// OnIdleClose): that is no sign of p's failure.
func (m *Membership) IdleClosed(p peer.ID) {
	l := m.detector
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.idleClosed) >= maxSyncMembers {
		clear(l.idleClosed)
	}
	l.idleClosed[p] = time.Now()
	delete(l.lost, p)
}

type departedMember struct {
	raw  []byte // the signed death notice, or leave announcement
	at   time.Time
	left bool // a leave: not probed
}

// newLiveness sets up the detector (before the membership's goroutines
// start, which use it); start starts it.
func (m *Membership) newLiveness() {
	l := &liveness{m: m, deaths: map[peer.ID]departedMember{}, lost: map[peer.ID]time.Time{}, idleClosed: map[peer.ID]time.Time{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	cfg := m.cfg.Liveness
	cfg.Self = m.self.String()
	cfg.Clock = swim.WallClock{}
	cfg.Transport = l
	cfg.Table = l
	if cfg.DigestInterval <= 0 {
		cfg.DigestInterval = m.cfg.Heartbeat
	}
	l.det = swim.New(cfg)
	m.detector = l
}

func (l *liveness) start() {
	l.m.cfg.Node.Host.SetStreamHandler(swimProtocol(l.m.cfg.Spec.ID), l.serve)
	l.det.Start()
}

func (l *liveness) stop() {
	l.m.cfg.Node.Host.RemoveStreamHandler(swimProtocol(l.m.cfg.Spec.ID))
	l.det.Stop()
	l.cancel()
	l.wg.Wait()
}

// wireMessage is a swim message on the wire.
type wireMessage struct {
	swim.Message
	// Bye says the sender dialled this node for this message alone — it
	// probes a member whose connection just ended — and closes the
	// connection after the answer: no sign of the sender's failure, as an
	// idle close is none (else each side's close would have the other
	// dial it again).
	Bye bool `json:"bye,omitempty"`
}

// Send implements swim.Transport: one stream per message, the answer (if
// any) read back from it.
func (l *liveness) Send(to string, msg *swim.Message) {
	p, err := peer.Decode(to)
	if err != nil || l.ctx.Err() != nil {
		return
	}
	h := l.m.cfg.Node.Host
	transient := len(h.Network().ConnsToPeer(p)) == 0 && l.isLost(p)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, swimTimeout)
		defer cancel()
		s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-swim"), p, swimProtocol(l.m.cfg.Spec.ID))
		if err != nil {
			l.m.log.Debug("swim: no stream", "peer", p, "kind", msg.Kind, "err", err)
			return
		}
		if transient {
			defer func() {
				if !connHeld(h, p) {
					l.m.IdleClosed(p)
					_ = h.Network().ClosePeer(p)
				}
			}()
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(swimTimeout))
		if err := json.NewEncoder(s).Encode(wireMessage{Message: *msg, Bye: transient}); err != nil {
			_ = s.Reset()
			return
		}
		_ = s.CloseWrite()
		var r swim.Message
		if err := json.NewDecoder(io.LimitReader(s, maxSwimMessage)).Decode(&r); err != nil {
			return // no answer (io.EOF) or a broken one
		}
		l.forgetLost(p) // it answers
		l.m.tab.touch(p, time.Now())
		if next := l.det.Handle(to, &r); next != nil {
			l.Send(to, next)
		}
	}()
}

// isLost reports whether p's connection ended lately (see lost).
func (l *liveness) isLost(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.lost[p]
	return ok && time.Since(at) < lostProbeFor
}

func (l *liveness) forgetLost(p peer.ID) {
	l.mu.Lock()
	delete(l.lost, p)
	l.mu.Unlock()
}

// serve answers a swim stream. Anyone connected may ping (a newcomer
// probes members that have not applied its announcement yet; refusing it
// would make it suspect them); everything else needs a known member.
func (l *liveness) serve(s network.Stream) {
	defer s.Close()
	from := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(swimTimeout))
	known := l.m.known(from)
	limit := int64(maxSwimMessage)
	if !known {
		limit = 2*MaxAnnouncementSize + 1<<10 // a ping, a digest, its own announcement
	}
	var w wireMessage
	if err := json.NewDecoder(io.LimitReader(s, limit)).Decode(&w); err != nil {
		_ = s.Reset()
		return
	}
	msg := w.Message
	if w.Bye {
		l.m.IdleClosed(from) // the connection it closes after this is no loss
	}
	if msg.Kind != swim.KindPing && !known {
		switch {
		case msg.Kind == swim.KindDigest && msg.Valid():
			// A digest from a peer this node does not know: a member whose
			// announcements never reached it (it was cut off when it
			// joined), or one it holds dead (cut off when it was declared
			// dead: it never saw the notice). No table data for it — it
			// may be an outsider —, only "who are you?" (its own record)
			// and, for a dead one, its death notice, so it refutes.
			r := &swim.Message{Kind: swim.KindPush, Want: []string{from.String()}}
			if raw := l.deathOf(from); raw != nil {
				r.Records = [][]byte{raw}
			}
			_ = json.NewEncoder(s).Encode(r)
			return
		case msg.Kind == swim.KindPush && len(msg.Want) == 0 && len(msg.Records) == 1 && recordOf(msg.Records[0]) == from.String():
			// Its answer: its own announcement, verified like one on the
			// topic (below, by Apply).
		default:
			_ = s.Reset()
			return
		}
	}
	l.m.tab.touch(from, time.Now())
	if r := l.det.Handle(from.String(), &msg); r != nil {
		_ = json.NewEncoder(s).Encode(r)
	}
}

// recordOf is the peer a pushed record is an announcement of ("" if it is
// none).
func recordOf(rec []byte) string {
	var a struct {
		Kind   string `json:"kind"`
		PeerID string `json:"peerId"`
	}
	if len(rec) > MaxAnnouncementSize || json.Unmarshal(rec, &a) != nil || a.Kind == KindDeath {
		return ""
	}
	return a.PeerID
}

// deathOf is the death notice this node holds for p (not a leave), if any.
func (l *liveness) deathOf(p peer.ID) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.deaths[p]; ok && !d.left {
		return d.raw
	}
	return nil
}

// swim.Table over the members table.

// NumMembers takes the snapshot the detector picks probe targets from: the
// members this node is connected to (in a full mesh, every member once
// dialled; with lazy tunnels its gossip mesh, DHT neighbours and packet
// peers) and those whose connection ended in the last lostProbeFor (not
// by an idle close). A probe therefore never waits for a dial — on a
// loaded machine a dial can outlast the probe timeout, and a node still
// dialling its fellow members declared them dead — except to a member
// that may just have crashed (its connections end at once: the kernel
// closes them). A member is probed by the members connected to it, and a
// death found there spreads on the topic.
func (l *liveness) NumMembers() int {
	t := l.m.tab
	nw := l.m.cfg.Node.Host.Network()
	now := time.Now()
	l.mu.Lock()
	for id, at := range l.lost {
		if now.Sub(at) >= lostProbeFor {
			delete(l.lost, id)
		}
	}
	lost := maps.Clone(l.lost)
	l.mu.Unlock()
	t.mu.RLock()
	ids := make([]string, 0, len(t.members))
	for id, mem := range t.members {
		if mem.Self {
			continue
		}
		if _, recent := lost[id]; recent || len(nw.ConnsToPeer(id)) > 0 {
			ids = append(ids, id.String())
		}
	}
	t.mu.RUnlock()
	sort.Strings(ids)
	l.mu.Lock()
	l.ids = ids
	l.mu.Unlock()
	return len(ids)
}

func (l *liveness) MemberAt(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.ids) {
		return ""
	}
	return l.ids[i]
}

func (l *liveness) Seq(id string) (uint64, bool) {
	p, err := peer.Decode(id)
	if err != nil {
		return 0, false
	}
	mem, ok := l.m.tab.get(p)
	if !ok {
		return 0, false
	}
	return mem.Ann.Seq, true
}

func (l *liveness) Digest() *swim.Digest {
	var d swim.Digest
	t := l.m.tab
	t.mu.RLock()
	for id, mem := range t.members {
		d.Add(id.String(), mem.Ann.Seq)
	}
	t.mu.RUnlock()
	return &d
}

func (l *liveness) Bucket(b int) []swim.Entry {
	var out []swim.Entry
	t := l.m.tab
	t.mu.RLock()
	for id, mem := range t.members {
		if s := id.String(); swim.BucketOf(s) == b {
			out = append(out, swim.Entry{ID: s, Seq: mem.Ann.Seq})
		}
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (l *liveness) Record(id string) []byte {
	p, err := peer.Decode(id)
	if err != nil {
		return nil
	}
	if mem, ok := l.m.tab.get(p); ok {
		b, err := mem.Ann.Marshal()
		if err != nil {
			return nil
		}
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deaths[p].raw
}

func (l *liveness) Departed() []string {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for p, d := range l.deaths {
		if now.Sub(d.at) > departedFor {
			delete(l.deaths, p)
			continue
		}
		if _, live := l.m.tab.get(p); !live && !d.left {
			out = append(out, p.String())
		}
	}
	sort.Strings(out)
	return out
}

// Apply verifies and applies pushed records: announcements (any member's,
// node-signed) and death notices.
func (l *liveness) Apply(from string, recs [][]byte) (killed []swim.Entry, stale []string) {
	now := time.Now()
	for _, raw := range recs {
		if kindOf(raw) == KindDeath {
			if e, ok := l.m.applyDeath(raw, now); ok {
				killed = append(killed, e)
			}
			continue
		}
		var head struct {
			PeerID string `json:"peerId"`
		}
		if json.Unmarshal(raw, &head) != nil {
			continue
		}
		id, err := peer.Decode(head.PeerID)
		if err != nil || id == l.m.self {
			continue
		}
		a, err := parseAnnouncement(raw, id, l.m.cfg.Spec, now, parseOpts{certs: &l.m.certs})
		if err != nil {
			l.m.countRejectErr(err)
			l.m.log.Debug("pushed announcement refused", "via", from, "peer", id, "err", err)
			continue
		}
		if l.m.revoked(a.Cert) {
			l.m.countReject(RejectRevoked)
			continue
		}
		l.m.apply(l.ctx, a)
		if l.m.tab.newerThan(id, a.Seq) {
			stale = append(stale, id.String())
		}
	}
	return killed, stale
}

// noteLeave keeps a member's signed leave, to hand on to members that
// missed it (anti-entropy).
func (l *liveness) noteLeave(id peer.ID, a *Announcement) {
	raw, err := a.Marshal()
	if err != nil {
		return
	}
	l.mu.Lock()
	l.deaths[id] = departedMember{raw: raw, at: time.Now(), left: true}
	l.mu.Unlock()
}

// Confirm spreads the death of a member whose suspicion timed out.
func (l *liveness) Confirm(id string, seq uint64) {
	d := &DeathNotice{Kind: KindDeath, PeerID: id, Seq: seq, By: l.m.self.String(), Time: time.Now().UTC()}
	b, err := d.signedBytes()
	if err == nil {
		d.Signature, err = l.m.cfg.Key.Sign(b)
	}
	var raw []byte
	if err == nil {
		raw, err = json.Marshal(d)
	}
	if err != nil {
		l.m.log.Warn("death notice not signed", "peer", id, "err", err)
		return
	}
	l.m.applyDeath(raw, time.Now())
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := l.m.topic.Publish(l.ctx, raw); err != nil && l.ctx.Err() == nil {
			l.m.log.Warn("death notice not published", "peer", id, "err", err)
		}
	}()
}

// Suspected: a fellow member got no answer to its probes; the detector's
// ack clears its suspicion (no announcement: the suspicion was its alone).
func (l *liveness) Suspected(by string, _ uint64) {
	l.m.log.Debug("suspected by a fellow member; answered", "by", by)
}

// staleDeathEvery bounds how often a notice of this node's death at an
// older record makes it announce again.
const staleDeathEvery = 10 * time.Second

// applyDeath verifies a death notice and drops its member if the table
// holds no newer record of it; a notice of this node's own death is refuted.
// It reports the member dropped.
func (m *Membership) applyDeath(raw []byte, now time.Time) (swim.Entry, bool) {
	d, dead, err := m.parseDeath(raw, now)
	if err != nil {
		m.countRejectErr(err)
		m.log.Debug("death notice refused", "err", err)
		return swim.Entry{}, false
	}
	if dead == m.self {
		if own, ok := m.tab.get(m.self); ok && own.Ann.Seq > d.Seq {
			// Refuted already — but whoever holds this notice may not
			// hold the newer announcement (it was published while this
			// node was cut off): announce again, at most once per
			// staleDeathEvery (the notice comes back by many ways).
			last := m.staleDeathAt.Load()
			if now.UnixNano()-last < int64(staleDeathEvery) || !m.staleDeathAt.CompareAndSwap(last, now.UnixNano()) {
				return swim.Entry{}, false
			}
			m.log.Debug("a fellow member declared this node dead at an older record; announcing again", "by", d.By)
		} else {
			m.log.Warn("a fellow member declared this node dead; refuting with a new announcement", "by", d.By)
		}
		m.Republish()
		return swim.Entry{}, false
	}
	if m.detector != nil {
		m.detector.mu.Lock()
		if _, ok := m.detector.deaths[dead]; !ok {
			m.detector.deaths[dead] = departedMember{raw: raw, at: now}
		}
		m.detector.mu.Unlock()
	}
	held, ok := m.tab.kill(dead, d.Seq)
	if !ok {
		return swim.Entry{}, false
	}
	m.cfg.Node.Host.ConnManager().Unprotect(dead, "cbnode-member")
	m.log.Info("member lost: it answered no probes", "host", held.Ann.HostName, "peer", dead, "detector", d.By)
	m.notify()
	return swim.Entry{ID: dead.String(), Seq: held.Ann.Seq}, true
}

// newerThan reports whether the table holds a record of id newer than seq,
// or its leave or death at seq or later.
func (t *table) newerThan(id peer.ID, seq uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if mem, ok := t.members[id]; ok {
		return mem.Ann.Seq > seq
	}
	s, ok := t.left[id]
	return ok && s >= seq
}

// touch records that member id was heard from directly (its LastSeen).
func (t *table) touch(id peer.ID, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if mem, ok := t.members[id]; ok && now.After(mem.LastSeen) {
		mem.LastSeen = now
	}
}

// kill drops member id if the table holds it at seq or older, and keeps
// seq so older announcements cannot bring it back.
func (t *table) kill(id peer.ID, seq uint64) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.left[id]; !ok || s < seq {
		t.left[id] = seq
	}
	mem, ok := t.members[id]
	if !ok || mem.Self || mem.Ann.Seq > seq {
		return Member{}, false
	}
	delete(t.members, id)
	return *mem, true
}

func (m *Membership) countRejectErr(err error) {
	reason := RejectMalformed
	var ve *ValidationError
	if errors.As(err, &ve) {
		reason = ve.Reason
	}
	m.countReject(reason)
}
