package cladnet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/internal/signedjson"
)

// Certificate binds a node's peer ID to a CLADNet for a validity window. It is
// signed by the CLADNet owner key, like a Nebula host certificate.
type Certificate struct {
	CladnetID string    `json:"cladnetId"`
	PeerID    string    `json:"peerId"`
	HostName  string    `json:"hostName"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Groups    []string  `json:"groups,omitempty"`
	// Role is RoleMember when empty, or RoleOperator for the operator
	// service (which claims no overlay IP). It is omitted from the JSON —
	// and so from the signed bytes — when empty, so certificates issued
	// before roles existed keep verifying.
	Role string `json:"role,omitempty"`
	// IP, when set, binds the holder to this one overlay address (cladnet
	// issue --ip, as Nebula certificates do): its claims on any other
	// address are invalid everywhere, and its claim on this one beats any
	// claim of an unbound certificate. Omitted when empty, so certificates
	// issued before it existed keep verifying.
	IP string `json:"ip,omitempty"`
	// Signature is the owner's Ed25519 signature over the other fields.
	Signature string `json:"signature"`

	// raw is the certificate's JSON object exactly as it was decoded
	// (compacted): it is verified, and re-encoded, as those bytes, so a
	// certificate written by another version (with members this one does
	// not know, or encoded differently) keeps verifying. Nil for a
	// certificate built in memory.
	raw []byte
}

// certFields is Certificate without its JSON methods.
type certFields Certificate

// UnmarshalJSON decodes a certificate and keeps its exact bytes.
func (c *Certificate) UnmarshalJSON(b []byte) error {
	var f certFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	raw, err := signedjson.Compact(b)
	if err != nil {
		return err
	}
	*c = Certificate(f)
	c.raw = raw
	return nil
}

// MarshalJSON writes the certificate's exact bytes when it was decoded and
// no field was changed since, else its fields.
func (c Certificate) MarshalJSON() ([]byte, error) {
	if c.exact() {
		return c.raw, nil
	}
	f := certFields(c)
	f.raw = nil
	return json.Marshal(f)
}

// exact reports whether c carries decoded bytes that still say what its
// fields say.
func (c *Certificate) exact() bool {
	if c.raw == nil {
		return false
	}
	f := certFields(*c)
	f.raw = nil
	return signedjson.Equal(c.raw, &f)
}

// Errors a certificate check can return; callers may test with errors.Is.
var (
	ErrBadSignature   = errors.New("certificate signature does not verify against the CLADNet owner key")
	ErrForeignCladnet = errors.New("certificate belongs to another CLADNet")
	ErrExpired        = errors.New("certificate is expired")
	ErrNotYetValid    = errors.New("certificate is not yet valid")
	ErrWrongPeer      = errors.New("certificate was issued to another peer")
)

const certDomain = "cbnode-cert-v1\n"

// Certificate roles.
const (
	RoleMember   = "member"
	RoleOperator = "operator"
)

// ValidateRole accepts "" (member), RoleMember and RoleOperator.
func ValidateRole(r string) error {
	switch r {
	case "", RoleMember, RoleOperator:
		return nil
	}
	return fmt.Errorf("invalid certificate role %q: use %q or %q", r, RoleMember, RoleOperator)
}

// RoleName returns the certificate's role, RoleMember when empty.
func (c *Certificate) RoleName() string {
	if c == nil || c.Role == "" {
		return RoleMember
	}
	return c.Role
}

// Fingerprint is the hex SHA-256 of the certificate's signed bytes: it names
// one issued certificate (a renewal has another fingerprint).
func (c *Certificate) Fingerprint() string {
	sum := sha256.Sum256(c.signedBytes())
	return hex.EncodeToString(sum[:])
}

// CertOption sets an optional certificate field in SignCertificate.
type CertOption func(*Certificate)

// WithRole sets the certificate's role (RoleMember is stored as empty, so
// such a certificate is byte-identical to one issued before roles existed).
func WithRole(role string) CertOption {
	return func(c *Certificate) {
		if role == RoleMember {
			role = ""
		}
		c.Role = role
	}
}

// WithNotBefore sets the start of the validity window (instead of one minute
// before now). A renewal keeps the old certificate's NotBefore, so the IP
// claims made under the old certificate stay valid under the new one.
func WithNotBefore(t time.Time) CertOption {
	return func(c *Certificate) { c.NotBefore = t.UTC().Truncate(time.Second) }
}

// WithIP binds the certificate to one overlay address (see Certificate.IP).
func WithIP(ip netip.Addr) CertOption {
	return func(c *Certificate) {
		if ip.IsValid() {
			c.IP = ip.String()
		}
	}
}

// BoundIP returns the address the certificate binds, invalid when none (or
// when the field does not parse, which Verify refuses).
func (c *Certificate) BoundIP() netip.Addr {
	if c == nil || c.IP == "" {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(c.IP)
	if err != nil || !ip.Is4() || ip.String() != c.IP {
		return netip.Addr{}
	}
	return ip
}

// signedBytes is the byte string the owner signs: a domain tag and the
// compact JSON of every member, the signature blanked — the exact members a
// decoded certificate carried (signedjson.Without), or, for one built in
// memory, the fields (encoding/json orders them by declaration, so this is
// deterministic and, for this version's certificates, the same bytes).
func (c *Certificate) signedBytes() []byte {
	if c.exact() {
		if b, err := signedjson.Without(c.raw, "signature", false); err == nil {
			return append([]byte(certDomain), b...)
		}
	}
	body := certFields(*c)
	body.Signature = ""
	body.raw = nil
	b, _ := json.Marshal(body) // cannot fail: only strings, times and slices
	return append([]byte(certDomain), b...)
}

// SignCertificate issues a certificate for peer p, valid from now for ttl.
func SignCertificate(owner ed25519.PrivateKey, spec *Spec, p peer.ID, host string, groups []string, now time.Time, ttl time.Duration, opts ...CertOption) (*Certificate, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("sign certificate: ttl %s must be positive", ttl)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("sign certificate: peer ID: %w", err)
	}
	if err := ValidateHostName(host); err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	c := &Certificate{
		CladnetID: spec.ID,
		PeerID:    p.String(),
		HostName:  host,
		NotBefore: now.UTC().Add(-time.Minute).Truncate(time.Second), // tolerate clock skew
		NotAfter:  now.UTC().Add(ttl).Truncate(time.Second),
		Groups:    groups,
	}
	for _, o := range opts {
		o(c)
	}
	if err := ValidateRole(c.Role); err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	if c.IP != "" {
		if p, err := spec.Prefix(); err != nil || !p.Contains(c.BoundIP()) {
			return nil, fmt.Errorf("sign certificate: address %s is not in CLADNet %s's range %s", c.IP, spec.Name, spec.CIDR)
		}
	}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(owner, c.signedBytes()))
	return c, nil
}

// Verify checks the certificate against the CLADNet owner key, the CLADNet ID,
// the peer it is presented by, and the time now.
func (c *Certificate) Verify(spec *Spec, from peer.ID, now time.Time) error {
	if c == nil {
		return errors.New("no certificate")
	}
	if c.CladnetID != spec.ID {
		return fmt.Errorf("%w (%s, not %s)", ErrForeignCladnet, c.CladnetID, spec.ID)
	}
	pub, err := spec.OwnerPublicKey()
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.signedBytes(), sig) {
		return ErrBadSignature
	}
	if from != "" && c.PeerID != from.String() {
		return fmt.Errorf("%w: issued to %s, presented by %s", ErrWrongPeer, c.PeerID, from)
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("%w: valid from %s", ErrNotYetValid, c.NotBefore.Format(time.RFC3339))
	}
	if err := ValidateRole(c.Role); err != nil {
		return err
	}
	if c.IP != "" && !c.BoundIP().IsValid() {
		return fmt.Errorf("certificate binds a malformed address %q", c.IP)
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w: expired at %s", ErrExpired, c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// Peer returns the certificate's peer ID.
func (c *Certificate) Peer() (peer.ID, error) {
	p, err := peer.Decode(c.PeerID)
	if err != nil {
		return "", fmt.Errorf("certificate peer ID %q: %w", c.PeerID, err)
	}
	return p, nil
}
