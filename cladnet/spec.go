// Package cladnet holds a CLADNet's identity and credentials: its spec, the
// owner key that signs node certificates, the certificates themselves and the
// join tokens handed to VMs. Nothing here touches the network.
package cladnet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Rule types, as in cb-network.
const (
	RuleBasic           = "basic"
	RuleCostPrioritized = "cost-prioritized"
)

// DefaultCIDR is the overlay range used when the operator gives none.
const DefaultCIDR = "10.77.0.0/24"

// Spec describes a CLADNet. JSON names follow cb-network's CLADNetSpecification
// so Tumblebug and existing clients can read it.
type Spec struct {
	ID          string    `json:"cladnetId"`
	Name        string    `json:"name"`
	CIDR        string    `json:"ipv4AddressSpace"`
	Description string    `json:"description,omitempty"`
	RuleType    string    `json:"ruleType"`
	CreatedAt   time.Time `json:"createdAt"`
	// OwnerKey is the base64 Ed25519 public key that signs certificates.
	OwnerKey string `json:"ownerKey"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// ValidateName reports whether name is usable as a CLADNet name (and directory name).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid CLADNet name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var hostRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// ValidateHostName reports whether name is a host name as RFC 1123 allows
// one label: 1-63 letters, digits and '-', not starting or ending with '-'.
// Host names end up in logs, metrics labels and DNS-like lookups.
func ValidateHostName(name string) error {
	if !hostRE.MatchString(name) {
		return fmt.Errorf("invalid host name %q: use 1-63 letters, digits or '-' (one DNS label, RFC 1123), not starting or ending with '-'", name)
	}
	return nil
}

// IDFromOwnerKey derives the CLADNet ID from the owner public key, so an ID
// cannot be claimed by anyone who lacks the key.
func IDFromOwnerKey(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10])
	return "cn" + strings.ToLower(enc)
}

// Prefix returns the parsed overlay range.
func (s *Spec) Prefix() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("CLADNet %s: bad ipv4AddressSpace %q: %w", s.Name, s.CIDR, err)
	}
	return p, nil
}

// OwnerPublicKey decodes the owner key.
func (s *Spec) OwnerPublicKey() (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s.OwnerKey)
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: owner key: %w", s.Name, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("CLADNet %s: owner key has %d bytes, want %d", s.Name, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Validate checks that the spec is self-consistent: name, range, rule type and
// that the ID really derives from the owner key.
func (s *Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	p, err := s.Prefix()
	if err != nil {
		return err
	}
	if err := ValidateRange(p); err != nil {
		return fmt.Errorf("CLADNet %s: %w", s.Name, err)
	}
	switch s.RuleType {
	case RuleBasic, RuleCostPrioritized:
	default:
		return fmt.Errorf("CLADNet %s: rule type %q: want %q or %q", s.Name, s.RuleType, RuleBasic, RuleCostPrioritized)
	}
	pub, err := s.OwnerPublicKey()
	if err != nil {
		return err
	}
	if id := IDFromOwnerKey(pub); id != s.ID {
		return fmt.Errorf("CLADNet %s: ID %q does not match its owner key (want %q)", s.Name, s.ID, id)
	}
	return nil
}

// ValidateRange checks an overlay range: IPv4, canonical, between /8 and /30.
func ValidateRange(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("range %s: IPv6 is not supported, need an IPv4 CIDR", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("range %s: host bits set (did you mean %s?)", p, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return fmt.Errorf("range %s: prefix length must be between /8 and /30", p)
	}
	for _, ok := range privateRanges {
		if ok.Bits() <= p.Bits() && ok.Contains(p.Addr()) {
			return nil
		}
	}
	return fmt.Errorf("range %s is not private: a CLADNet range must lie in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (RFC 1918) or 100.64.0.0/10 (shared, CGNAT), so it cannot shadow public, loopback, link-local or multicast addresses ('cbnode ipam recommend' picks one)", p)
}

// privateRanges may hold CLADNet ranges.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
}

// NewSpec makes a spec for a new CLADNet owned by pub.
func NewSpec(name, cidr, ruleType, description string, pub ed25519.PublicKey, now time.Time) (*Spec, error) {
	if ruleType == "" {
		ruleType = RuleBasic
	}
	if cidr == "" {
		cidr = DefaultCIDR
	}
	s := &Spec{
		ID:          IDFromOwnerKey(pub),
		Name:        name,
		CIDR:        cidr,
		Description: description,
		RuleType:    ruleType,
		CreatedAt:   now.UTC().Truncate(time.Second),
		OwnerKey:    base64.StdEncoding.EncodeToString(pub),
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// ErrNotFound is returned when a CLADNet directory does not exist.
var ErrNotFound = errors.New("CLADNet not found")
