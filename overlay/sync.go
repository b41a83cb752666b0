package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A newcomer pulls the members table from a member over a direct stream
// (anti-entropy), instead of every member re-announcing itself to the whole
// CLADNet whenever someone joins — that made a join wave cost O(N²)
// messages. Announcements verify on their own (node signature and owner-
// signed certificate), so a table relayed by any member is as trustworthy as
// the gossip. The requester first hands over its own announcement, so the
// responder learns of it at once.

const (
	syncTimeout    = 10 * time.Second
	maxSyncMembers = 4096
)

func syncProtocol(cladnetID string) protocol.ID {
	return protocol.ID("/cbnode/cladnet/" + cladnetID + "/members/1.0.0")
}

// serveSync answers table pulls.
func (m *Membership) serveSync(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	from := s.Conn().RemotePeer()
	var req json.RawMessage
	if err := json.NewDecoder(io.LimitReader(s, MaxAnnouncementSize)).Decode(&req); err != nil {
		_ = s.Reset()
		return
	}
	a, err := parseAnnouncement(req, from, m.cfg.Spec, time.Now(), parseOpts{certs: &m.certs, claims: m.claimVal})
	if err == nil && m.revoked(a.Cert) {
		m.countReject(RejectRevoked)
		_ = s.Reset()
		return
	}
	if err != nil || a.Kind != KindAnnounce {
		reason := RejectField // a leave is no table pull
		var ve *ValidationError
		if errors.As(err, &ve) {
			reason = ve.Reason
		}
		m.countReject(reason)
		m.log.Debug("table pull refused", "from", from, "err", err)
		_ = s.Reset()
		return
	}
	m.apply(context.Background(), a)
	var out []*Announcement
	for _, mem := range m.tab.list() {
		out = append(out, mem.Ann)
	}
	_ = json.NewEncoder(s).Encode(out)
}

// pullTable fetches p's members table and applies every announcement that
// verifies.
func (m *Membership) pullTable(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	s, err := m.cfg.Node.Host.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-members"), p, syncProtocol(m.cfg.Spec.ID))
	if err != nil {
		return fmt.Errorf("pull members table from %s: %w", p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	own, err := m.announcement(KindAnnounce)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(s).Encode(own); err != nil {
		return fmt.Errorf("pull members table from %s: %w", p, err)
	}
	var table []json.RawMessage
	if err := json.NewDecoder(io.LimitReader(s, maxSyncMembers*MaxAnnouncementSize)).Decode(&table); err != nil {
		return fmt.Errorf("pull members table from %s: %w", p, err)
	}
	if len(table) > maxSyncMembers {
		return fmt.Errorf("pull members table from %s: %d entries, limit %d", p, len(table), maxSyncMembers)
	}
	now := time.Now()
	for _, raw := range table {
		var head struct {
			PeerID string `json:"peerId"`
		}
		if json.Unmarshal(raw, &head) != nil {
			continue
		}
		id, err := peer.Decode(head.PeerID)
		if err != nil || id == m.self {
			continue
		}
		a, err := parseAnnouncement(raw, id, m.cfg.Spec, now, parseOpts{certs: &m.certs, claims: m.claimVal})
		if err != nil {
			m.log.Debug("pulled announcement refused", "via", p, "peer", id, "err", err)
			continue
		}
		m.apply(ctx, a)
	}
	return nil
}
