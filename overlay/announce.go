// Package overlay runs a node's life in a CLADNet:
//
//	announce.go    signed member announcements and heartbeats, validation
//	members.go     the members table
//	membership.go  gossip membership: publishing, receiving, expiry; full mesh or lazy tunnels (FullMesh)
//	liveness.go    SWIM failure detection and anti-entropy over direct streams (swim/), signed death notices
//	discovery.go   DHT rendezvous (with lazy tunnels: ≤ 8 members, direct only), newcomer handling
//	sync.go        members-table pull for newcomers
//	signedtopic.go an owner-signed, versioned document on its own gossip topic: validation, persistence, re-publication
//	rules.go       the signed cost rules, gossiped (a signedtopic.go user)
//	revocation.go  the signed revocation list, gossiped (a signedtopic.go user); enforcement
//	control.go     the signed control document (data plane up/down, test requests), gossiped (a signedtopic.go user); the test-result protocol
//	topic.go       joining a validated gossip topic
//	link.go        libp2p streams for the forwarding core; closing idle lazy tunnels' connections
//	trim.go        lazy tunnels: closing surplus member connections nothing holds, and relayed ones no tunnel uses
//	punch.go       hole-punch retries
//	moved.go       healing: members that moved or restarted, own address changes, bootstrap back
//	instance.go    one identity twice: instance IDs, witnesses, conflicts
//
// swim/ is the failure detector and anti-entropy, free of libp2p and of the
// clock (the simulator in /sim runs it too). The data plane lives in
// forward/ (the forwarding core) and tun/ (cbnet0);
// names/ makes members reachable by name (DNS, the hosts file);
// pathlog/ keeps each member's path history.
package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/ipam"
)

// Announcement kinds.
const (
	KindAnnounce  = "announce"
	KindLeave     = "leave"
	KindHeartbeat = "heartbeat"
)

// Heartbeat is the compact liveness message sent between full
// announcements. It carries no certificate: the gossip message's own
// signature (strict signing) names and authenticates the sender, and only
// a member already in the table — admitted by a full, certified
// announcement — can refresh itself with it.
type Heartbeat struct {
	Kind string `json:"kind"`
	Seq  uint64 `json:"seq"`
	// Instance is the sender's instance ID (instance.go); older nodes send
	// none.
	Instance string `json:"inst,omitempty"`
}

// maxHeartbeatSize bounds a heartbeat on the wire.
const maxHeartbeatSize = 128

// kindOf reads just the kind of a membership message.
func kindOf(data []byte) string {
	var k struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(data, &k) != nil {
		return ""
	}
	return k.Kind
}

// Peer states, as cb-network named them.
const (
	StateConfiguring = "configuring"
	StateTunneling   = "tunneling"
	StateClosing     = "closing"
	StateReleased    = "released"
	StateFailed      = "failed"
)

// MaxAnnouncementSize bounds an announcement on the wire.
const MaxAnnouncementSize = 16 << 10

// Announcement is what a member tells the CLADNet about itself. It is signed
// by the member's node key, so it verifies on its own wherever it travels.
type Announcement struct {
	Kind      string               `json:"kind"`
	PeerID    string               `json:"peerId"`
	Cert      *cladnet.Certificate `json:"cert"`
	HostName  string               `json:"hostName"`
	OverlayIP string               `json:"ip,omitempty"`
	// ClaimedAt is the first-claim time of the overlay IP's DHT claim, so
	// members can settle a duplicate address from the gossip alone.
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
	// Claim is the signed DHT record of the overlay IP's claim, as the
	// allocator published it: an announcement with an overlay IP is
	// accepted only with a claim on that address, by the sender, valid
	// under the CLADNet's rules (certificate, lease, range, bound address)
	// and dated ClaimedAt. Routing and conflict settlement use nothing else.
	Claim []byte         `json:"claim,omitempty"`
	Addrs []string       `json:"addrs,omitempty"`
	Cloud cost.CloudInfo `json:"details"`
	State string         `json:"state"`
	Relay bool           `json:"relay,omitempty"` // relays for fellow members
	Seq   uint64         `json:"seq"`
	Time  time.Time      `json:"time"`
	// Instance and Started identify the run of the node that sent it (a
	// random ID per start, see instance.go); older nodes send neither.
	// They are not covered by the node signature — older nodes re-encode
	// announcements without them to verify it — only by the gossip
	// message's signature: a relayed copy may carry any value, so they only
	// ever prompt a witness to ask the node itself (signed answers).
	Instance  string    `json:"instance,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Signature []byte    `json:"sig,omitempty"`

	claim *ipam.Claim // Claim, verified by parseAnnouncement
}

// VerifiedClaim returns the announcement's verified claim on its overlay
// IP (nil when it announces none).
func (a *Announcement) VerifiedClaim() *ipam.Claim { return a.claim }

const annDomain = "cbnode-announce-v1\n"

func (a *Announcement) signedBytes() ([]byte, error) {
	body := *a
	body.Signature = nil
	body.Instance, body.Started = "", time.Time{}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return append([]byte(annDomain), b...), nil
}

// Sign signs the announcement with the node key.
func (a *Announcement) Sign(k crypto.PrivKey) error {
	b, err := a.signedBytes()
	if err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	sig, err := k.Sign(b)
	if err != nil {
		return fmt.Errorf("sign announcement: %w", err)
	}
	a.Signature = sig
	return nil
}

// Marshal encodes a signed announcement.
func (a *Announcement) Marshal() ([]byte, error) { return json.Marshal(a) }

// Rejection reasons, also the keys of the rejected-announcements counter.
const (
	RejectSize      = "oversized"
	RejectMalformed = "malformed"
	RejectSender    = "sender_mismatch"
	RejectCert      = "bad_certificate"
	// RejectTooManyAddrs counts announcements some of whose addresses
	// were not dialled (more than MaxDialDirect/MaxDialCircuit).
	RejectTooManyAddrs = "addresses_not_dialled"
	RejectSignature    = "bad_signature"
	RejectField        = "bad_field"
	// RejectRevoked and RejectExpired also count members dropped from the
	// table because their certificate was revoked or expired.
	RejectRevoked = "revoked"
	RejectExpired = "expired"
	// RejectOperatorIP: an operator-role announcement carrying an overlay
	// address (an operator claims none).
	RejectOperatorIP = "operator_ip"
	// RejectClaim: an overlay address announced without a valid claim on
	// it by the sender (missing, forged, expired, another address or
	// peer, revoked, or dated otherwise than the announcement says).
	RejectClaim = "bad_claim"
)

// ValidationError says why an announcement was refused.
type ValidationError struct {
	Reason string
	Err    error
}

func (e *ValidationError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *ValidationError) Unwrap() error { return e.Err }

func reject(reason string, format string, args ...any) error {
	return &ValidationError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ParseAnnouncement decodes and fully verifies an announcement received from
// peer `from` (the gossip message's signed origin): size, shape, node
// signature, and certificate against the CLADNet owner key at time now.
func ParseAnnouncement(data []byte, from peer.ID, spec *cladnet.Spec, now time.Time) (*Announcement, error) {
	return parseAnnouncement(data, from, spec, now, parseOpts{})
}

// parseOpts lets the gossip path skip work already done: pubsub's strict
// signing has verified the message's signature with the origin's key (so the
// node signature adds nothing there), and a certificate that verified before
// need not have its owner signature checked again (cert cache).
type parseOpts struct {
	transportSigned bool
	certs           *certCache
	claims          *ipam.Validator // nil: ipam.NewValidator(spec)
}

// certCache remembers certificates whose owner signature verified, keyed by
// the peer and the certificate's every field (so an edited certificate is a
// miss); validity and CLADNet are still checked on every use.
type certCache struct {
	mu sync.Mutex
	ok map[string]struct{}
}

const maxCachedCerts = 1 << 14

func (c *certCache) verify(cert *cladnet.Certificate, spec *cladnet.Spec, pid peer.ID, now time.Time) error {
	if cert == nil || c == nil {
		return cert.Verify(spec, pid, now)
	}
	body, err := json.Marshal(cert)
	if err != nil {
		return cert.Verify(spec, pid, now)
	}
	key := pid.String() + "\x00" + string(body)
	c.mu.Lock()
	_, hit := c.ok[key]
	c.mu.Unlock()
	if hit && cert.CladnetID == spec.ID && cert.PeerID == pid.String() && !now.Before(cert.NotBefore) && now.Before(cert.NotAfter) {
		return nil
	}
	if err := cert.Verify(spec, pid, now); err != nil {
		return err
	}
	c.mu.Lock()
	if c.ok == nil || len(c.ok) >= maxCachedCerts {
		c.ok = map[string]struct{}{}
	}
	c.ok[key] = struct{}{}
	c.mu.Unlock()
	return nil
}

func parseAnnouncement(data []byte, from peer.ID, spec *cladnet.Spec, now time.Time, o parseOpts) (*Announcement, error) {
	if len(data) > MaxAnnouncementSize {
		return nil, reject(RejectSize, "%d bytes, limit %d", len(data), MaxAnnouncementSize)
	}
	var a Announcement
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, reject(RejectMalformed, "%v", err)
	}
	pid, err := peer.Decode(a.PeerID)
	if err != nil {
		return nil, reject(RejectMalformed, "peer ID %q: %v", a.PeerID, err)
	}
	if pid != from {
		return nil, reject(RejectSender, "announcement for %s published by %s", pid, from)
	}
	if a.Kind != KindAnnounce && a.Kind != KindLeave {
		return nil, reject(RejectField, "kind %q", a.Kind)
	}
	if err := o.certs.verify(a.Cert, spec, pid, now); err != nil {
		return nil, reject(RejectCert, "%w", err)
	}
	if !o.transportSigned {
		pub, err := pid.ExtractPublicKey()
		if err != nil {
			return nil, reject(RejectSignature, "peer ID carries no public key: %v", err)
		}
		b, err := a.signedBytes()
		if err != nil {
			return nil, reject(RejectMalformed, "%v", err)
		}
		if ok, err := pub.Verify(b, a.Signature); err != nil || !ok {
			return nil, reject(RejectSignature, "signature does not verify")
		}
	}
	if a.HostName != a.Cert.HostName {
		return nil, reject(RejectField, "host name %q differs from the certificate's %q", a.HostName, a.Cert.HostName)
	}
	if a.OverlayIP != "" {
		ip, err := netip.ParseAddr(a.OverlayIP)
		if err != nil {
			return nil, reject(RejectField, "overlay IP %q: %v", a.OverlayIP, err)
		}
		if p, err := spec.Prefix(); err == nil && !p.Contains(ip) {
			return nil, reject(RejectField, "overlay IP %s outside CLADNet range %s", ip, p)
		}
	}
	if a.OverlayIP != "" && a.Cert.RoleName() != cladnet.RoleOperator { // an operator's is refused later
		c, err := checkAnnouncedClaim(&a, pid, spec, now, o.claims)
		if err != nil {
			return nil, reject(RejectClaim, "overlay IP %s: %w", a.OverlayIP, err)
		}
		a.claim = c
	}
	if len(a.Addrs) > 64 {
		return nil, reject(RejectField, "%d addresses, limit 64", len(a.Addrs))
	}
	if err := a.Cloud.Validate(); err != nil {
		return nil, reject(RejectField, "%v", err)
	}
	return &a, nil
}

// checkAnnouncedClaim verifies the claim an announcement carries for its
// overlay IP.
func checkAnnouncedClaim(a *Announcement, pid peer.ID, spec *cladnet.Spec, now time.Time, v *ipam.Validator) (*ipam.Claim, error) {
	if len(a.Claim) == 0 {
		return nil, errors.New("no claim: a member announces only an address it holds a DHT claim on (an older cbnode? upgrade it)")
	}
	ip, _ := netip.ParseAddr(a.OverlayIP) // parsed above
	if v == nil {
		v = ipam.NewValidator(spec)
	}
	c, err := v.CheckClaim(spec.ID, ip, a.Claim, now)
	if err != nil {
		return nil, err
	}
	switch {
	case c.IP != a.OverlayIP:
		return nil, fmt.Errorf("the claim is on %s", c.IP)
	case c.PeerID != pid.String():
		return nil, fmt.Errorf("the claim is %s's, not the sender's", c.PeerID)
	case c.Released:
		return nil, errors.New("the claim is released")
	case !c.ClaimedAt.Equal(a.ClaimedAt):
		return nil, fmt.Errorf("the claim is dated %s, the announcement says %s", c.ClaimedAt.Format(time.RFC3339Nano), a.ClaimedAt.Format(time.RFC3339Nano))
	}
	return c, nil
}

// errStale marks an announcement older than what we hold.
var errStale = errors.New("stale announcement")
