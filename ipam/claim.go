package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Namespace is cbnode's DHT record namespace. Every claim key starts with
// "/cbnode/", which is also the name under which the claim Validator must be
// registered (node.Config.Validators["cbnode"]).
const Namespace = "cbnode"

const (
	// MaxClaimSize bounds an encoded claim; larger records are rejected
	// before they are parsed.
	MaxClaimSize = 8 << 10
	// MaxLease is the longest lease a claim may carry: a record whose lease
	// ends further in the future (beyond MaxClockSkew) is rejected.
	MaxLease = 30 * 24 * time.Hour
	// MaxClockSkew is the clock difference between nodes that validation
	// tolerates.
	MaxClockSkew = 5 * time.Minute

	claimDomain  = "cbnode-claim-v1\n"
	maxSigLen    = 1024
	maxIDLen     = 64
	claimKeyPart = "ip"
)

// Errors a claim check can return; test with errors.Is.
var (
	ErrMalformedClaim = errors.New("malformed IP claim")
	ErrClaimTooLarge  = errors.New("IP claim is too large")
	ErrKeyMismatch    = errors.New("IP claim does not match its DHT key")
	ErrClaimSignature = errors.New("IP claim signature does not verify against the claimant's peer ID")
	ErrClaimExpired   = errors.New("IP claim lease has expired")
	ErrLeaseTooLong   = errors.New("IP claim lease ends too far in the future")
	ErrClaimCert      = errors.New("IP claim certificate is not valid")
	ErrOutOfRange     = errors.New("IP claim address is not a usable host of the CLADNet range")
	ErrClaimFuture    = errors.New("IP claim is dated in the future")
	ErrNotBoundIP     = errors.New("IP claim is for another address than the one the claimant's certificate binds")
)

var cladnetIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Claim is a node's claim on one overlay address of a CLADNet, stored in the
// private DHT under ClaimKey(CladnetID, IP). It is signed by the claimant's
// libp2p node key and carries the certificate the CLADNet owner issued to
// that node.
type Claim struct {
	CladnetID string               `json:"cladnetId"`
	IP        string               `json:"ip"`
	PeerID    string               `json:"peerId"`
	Cert      *cladnet.Certificate `json:"cert"`
	// ClaimedAt is when the address was first claimed; renewals keep it, so
	// it orders conflicting claims (earliest wins). It may not precede the
	// certificate's NotBefore nor lie beyond now + MaxClockSkew; members
	// also date a claim that turns up late on a held address by when they
	// first saw it (see Dated), so backdating wins nothing.
	ClaimedAt time.Time `json:"claimedAt"`
	// Seq increases with every renewal and with the release.
	Seq uint64 `json:"seq"`
	// Expires is the end of the lease.
	Expires time.Time `json:"expires"`
	// Released marks a graceful release: the address is free at once.
	Released  bool   `json:"released,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// ClaimKey is the DHT key of the claim on ip in CLADNet cladnetID:
// "/cbnode/<cladnetID>/ip/<ip>".
func ClaimKey(cladnetID string, ip netip.Addr) string {
	return "/" + Namespace + "/" + cladnetID + "/" + claimKeyPart + "/" + ip.String()
}

// ParseClaimKey splits a claim key into its CLADNet ID and address. Only the
// exact form ClaimKey produces is accepted (IPv4, canonical spelling).
func ParseClaimKey(key string) (string, netip.Addr, error) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != Namespace || parts[3] != claimKeyPart {
		return "", netip.Addr{}, fmt.Errorf("%w: key %q is not /%s/<cladnet>/%s/<address>", ErrMalformedClaim, trunc(key), Namespace, claimKeyPart)
	}
	id := parts[2]
	if err := checkCladnetID(id); err != nil {
		return "", netip.Addr{}, err
	}
	ip, err := parseIPv4(parts[4])
	if err != nil {
		return "", netip.Addr{}, err
	}
	return id, ip, nil
}

func checkCladnetID(id string) error {
	if len(id) > maxIDLen || !cladnetIDRE.MatchString(id) {
		return fmt.Errorf("%w: bad CLADNet ID %q", ErrMalformedClaim, trunc(id))
	}
	return nil
}

// parseIPv4 accepts only the canonical dotted-quad spelling of an IPv4 address.
func parseIPv4(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() || ip.String() != s {
		return netip.Addr{}, fmt.Errorf("%w: bad IPv4 address %q", ErrMalformedClaim, trunc(s))
	}
	return ip, nil
}

// trunc shortens attacker-supplied strings before they reach error messages.
func trunc(s string) string {
	const n = 80
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// signedBytes is the canonical byte string the claimant signs: a domain tag
// and the JSON of every field but the signature (encoding/json writes fields
// in declaration order, so the encoding is deterministic).
func (c *Claim) signedBytes() ([]byte, error) {
	body := *c
	body.Signature = nil
	b, err := json.Marshal(&body)
	if err != nil {
		return nil, fmt.Errorf("encode claim: %w", err)
	}
	return append([]byte(claimDomain), b...), nil
}

// Sign sets PeerID from key (or checks that it matches) and signs the claim.
// Times are normalised to UTC first so the encoding survives a round trip.
func (c *Claim) Sign(key crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("sign claim: %w", err)
	}
	if c.PeerID == "" {
		c.PeerID = id.String()
	} else if c.PeerID != id.String() {
		return fmt.Errorf("sign claim: claim names peer %s, key belongs to %s", c.PeerID, id)
	}
	c.ClaimedAt = c.ClaimedAt.UTC()
	c.Expires = c.Expires.UTC()
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return fmt.Errorf("sign claim: %w", err)
	}
	c.Signature = sig
	return nil
}

// Marshal encodes the claim as the DHT record value.
func (c *Claim) Marshal() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode claim: %w", err)
	}
	if len(b) > MaxClaimSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrClaimTooLarge, len(b), MaxClaimSize)
	}
	return b, nil
}

// ParseClaim decodes a record value and checks its structure and signature
// (not its times, certificate chain or key; see Validator). It never panics on
// hostile input.
func ParseClaim(value []byte) (*Claim, error) {
	if len(value) > MaxClaimSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrClaimTooLarge, len(value), MaxClaimSize)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	var c Claim
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedClaim, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the claim", ErrMalformedClaim)
	}
	if err := c.checkStructure(); err != nil {
		return nil, err
	}
	if err := c.verifySignature(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkStructure checks every field for presence and self-consistency.
func (c *Claim) checkStructure() error {
	if err := checkCladnetID(c.CladnetID); err != nil {
		return err
	}
	if _, err := parseIPv4(c.IP); err != nil {
		return err
	}
	if _, err := c.Peer(); err != nil {
		return err
	}
	switch {
	case c.Cert == nil:
		return fmt.Errorf("%w: no certificate", ErrMalformedClaim)
	case c.Cert.PeerID != c.PeerID:
		return fmt.Errorf("%w: certificate issued to %s, claim made by %s", ErrClaimCert, trunc(c.Cert.PeerID), c.PeerID)
	case c.Cert.CladnetID != c.CladnetID:
		return fmt.Errorf("%w: certificate of CLADNet %s, claim for %s", ErrClaimCert, trunc(c.Cert.CladnetID), c.CladnetID)
	case c.ClaimedAt.IsZero() || c.Expires.IsZero():
		return fmt.Errorf("%w: missing claimedAt or expires", ErrMalformedClaim)
	case !c.ClaimedAt.Before(c.Expires):
		return fmt.Errorf("%w: claimed at %s, after its lease ends", ErrMalformedClaim, c.ClaimedAt.Format(time.RFC3339))
	case c.ClaimedAt.Before(c.Cert.NotBefore):
		return fmt.Errorf("%w: claimed at %s, before its certificate became valid (%s)", ErrMalformedClaim,
			c.ClaimedAt.Format(time.RFC3339), c.Cert.NotBefore.Format(time.RFC3339))
	case len(c.Signature) == 0 || len(c.Signature) > maxSigLen:
		return fmt.Errorf("%w: missing or oversized signature", ErrMalformedClaim)
	}
	return nil
}

// verifySignature checks the signature with the public key embedded in the
// claimant's peer ID.
func (c *Claim) verifySignature() error {
	p, err := c.Peer()
	if err != nil {
		return err
	}
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: no public key in peer ID %s: %v", ErrClaimSignature, p, err)
	}
	msg, err := c.signedBytes()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(msg, c.Signature)
	if err != nil || !ok {
		return ErrClaimSignature
	}
	return nil
}

// Peer returns the claimant's peer ID. Only the canonical string form is
// accepted, so that one peer has one spelling.
func (c *Claim) Peer() (peer.ID, error) {
	p, err := peer.Decode(c.PeerID)
	if err != nil || p.String() != c.PeerID {
		return "", fmt.Errorf("%w: bad peer ID %q", ErrMalformedClaim, trunc(c.PeerID))
	}
	return p, nil
}

// Addr returns the claimed address.
func (c *Claim) Addr() netip.Addr {
	ip, _ := netip.ParseAddr(c.IP)
	return ip
}

// holder describes the claimant for messages: "host (peer)".
func (c *Claim) holder() string {
	host := "unknown host"
	if c.Cert != nil && c.Cert.HostName != "" {
		host = c.Cert.HostName
	}
	return fmt.Sprintf("%s (%s)", host, c.PeerID)
}
