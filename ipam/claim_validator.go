package ipam

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Validator is the DHT record validator for the "cbnode" namespace. Register
// it on every node, bootstrap nodes included:
//
//	node.Config{Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator(spec)}}
//
// For a claim in a CLADNet it knows (one of the specs given to NewValidator,
// or an owner key given to WithOwners) it also verifies the claimant's
// certificate against the CLADNet owner key and (with a spec) the address
// against the range; claims of other CLADNets are refused unless the
// validator was built WithUnknown, which checks their structure, signature
// and lease only.
//
// A Validator is immutable and safe for concurrent use.
type Validator struct {
	specs   map[string]knownSpec
	now     func() time.Time
	revoked func(*cladnet.Certificate) bool
	unknown bool // accept claims of CLADNets it knows nothing of (WithUnknown)
	refused *refusals
	holder  HolderFunc
}

// HolderFunc reports, for a peer of CLADNet cladnetID, the one address it
// holds as far as this node knows (the members table): member is false when
// the node cannot tell (not a live member, or this node itself); addr is
// invalid for a live member that holds no address.
type HolderFunc func(cladnetID string, p peer.ID) (addr netip.Addr, member bool)

// ErrExtraClaim is matched (errors.Is) for a claim of a live member on an
// address other than the one it holds: a member holds one address, so its
// extra claims count as absent — their addresses are free.
var ErrExtraClaim = errors.New("IP claim is an extra claim of a member that holds another address")

// WithHolder returns a copy of v that refuses, in the CLADNets it knows,
// claims of a live member on any address but the one f says it holds
// (ErrExtraClaim). f must be safe for concurrent use and fast: it runs on
// every record the DHT node validates.
func (v *Validator) WithHolder(f HolderFunc) *Validator {
	w := *v
	w.holder = f
	return &w
}

// refusals remembers when the validator last refused a record of each key
// for a reason other than an ended lease or a revoked certificate (which
// make the address free): a DHT read that found only such records must not
// take the address for free (see RefusedSince).
type refusals struct {
	mu sync.Mutex
	at map[string]time.Time
}

const maxRefusals = 4096

func (r *refusals) note(key string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil || len(r.at) >= maxRefusals {
		r.at = map[string]time.Time{}
	}
	r.at[key] = now
}

// RefusedSince reports whether v refused a record of key (forged, of a bad
// certificate, malformed; not merely expired or revoked) at or after t.
func (v *Validator) RefusedSince(key string, t time.Time) bool {
	if v.refused == nil {
		return false
	}
	v.refused.mu.Lock()
	defer v.refused.mu.Unlock()
	at, ok := v.refused.at[key]
	return ok && !at.Before(t)
}

// ErrUnknownCladnet is matched (errors.Is) for a claim of a CLADNet the
// validator knows neither the spec nor the owner key of, unless it was
// built WithUnknown.
var ErrUnknownCladnet = errors.New("IP claim of a CLADNet this node does not serve")

// WithOwners returns a copy of v that also knows the CLADNets owned by
// these keys (base64 Ed25519 public keys, a spec's ownerKey): it verifies
// their claims' certificates (the range is unknown, so not the address).
// A bootstrap node knows its CLADNets this way. Bad keys are ignored.
func (v *Validator) WithOwners(keys ...string) *Validator {
	w := *v
	w.specs = maps.Clone(v.specs)
	for _, k := range keys {
		s := &cladnet.Spec{OwnerKey: k}
		pub, err := s.OwnerPublicKey()
		if err != nil {
			continue
		}
		s.ID = cladnet.IDFromOwnerKey(pub)
		if _, ok := w.specs[s.ID]; !ok {
			w.specs[s.ID] = knownSpec{spec: s, ownerOnly: true}
		}
	}
	return &w
}

// WithUnknown returns a copy of v that accepts claims of CLADNets it does
// not know, checking their structure, signature and lease only (a public
// bootstrap node that opted in with --any-cladnet). By default such claims
// are refused (ErrUnknownCladnet): an outsider cannot plant records.
func (v *Validator) WithUnknown() *Validator {
	w := *v
	w.unknown = true
	return &w
}

// Knows reports whether v verifies certificates of CLADNet id.
func (v *Validator) Knows(id string) bool {
	_, ok := v.specs[id]
	return ok
}

// ErrClaimRevoked is matched (errors.Is) for a claim whose certificate the
// CLADNet revoked: it counts as absent, so its address is free.
var ErrClaimRevoked = errors.New("claimant's certificate is revoked")

// WithRevoked returns a copy of v that also refuses claims, in the CLADNets
// it knows, whose certificate revoked reports as revoked (the CLADNet's
// revocation list): such a claim is treated as absent, its address free.
// revoked must be safe for concurrent use.
func (v *Validator) WithRevoked(revoked func(*cladnet.Certificate) bool) *Validator {
	w := *v
	w.revoked = revoked
	return &w
}

type knownSpec struct {
	spec      *cladnet.Spec
	prefix    netip.Prefix // invalid if the spec's range does not parse
	ownerOnly bool         // known by owner key only: no range to check
}

var _ record.Validator = (*Validator)(nil)

// NewValidator returns a validator that verifies certificates of the given
// CLADNets. nil specs are ignored.
func NewValidator(specs ...*cladnet.Spec) *Validator {
	v := &Validator{specs: make(map[string]knownSpec, len(specs)), now: time.Now, refused: &refusals{}}
	for _, s := range specs {
		if s == nil {
			continue
		}
		ks := knownSpec{spec: s}
		if p, err := s.Prefix(); err == nil && cladnet.ValidateRange(p) == nil {
			ks.prefix = p
		}
		v.specs[s.ID] = ks
	}
	return v
}

// Validate implements record.Validator. It rejects malformed or oversized
// records, records that do not match their key, bad signatures, certificates
// not issued to the claimant (or, for known CLADNets, not signed by the owner
// or not currently valid), expired leases and leases longer than MaxLease.
func (v *Validator) Validate(key string, value []byte) error {
	now := v.now()
	_, err := v.check(key, value, now)
	if err != nil && v.refused != nil && !errors.Is(err, ErrClaimExpired) && !errors.Is(err, ErrClaimRevoked) && !errors.Is(err, ErrExtraClaim) {
		v.refused.note(key, now)
	}
	return err
}

// CheckClaim validates value as the record under ClaimKey(cladnetID, ip) at
// time now (every check Validate makes) and returns the parsed claim: a
// member announcement carries its claim, and receivers verify it with this.
func (v *Validator) CheckClaim(cladnetID string, ip netip.Addr, value []byte, now time.Time) (*Claim, error) {
	return v.check(ClaimKey(cladnetID, ip), value, now)
}

// check validates one record at time now and returns the parsed claim.
func (v *Validator) check(key string, value []byte, now time.Time) (*Claim, error) {
	if len(value) > MaxClaimSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrClaimTooLarge, len(value), MaxClaimSize)
	}
	id, ip, err := ParseClaimKey(key)
	if err != nil {
		return nil, err
	}
	c, err := ParseClaim(value)
	if err != nil {
		return nil, err
	}
	if c.CladnetID != id || c.IP != ip.String() {
		return nil, fmt.Errorf("%w: key names %s in %s, record claims %s in %s", ErrKeyMismatch, ip, id, c.IP, c.CladnetID)
	}
	if !now.Before(c.Expires) {
		return nil, fmt.Errorf("%w: lease of %s by %s ended at %s", ErrClaimExpired, c.IP, c.PeerID, c.Expires.Format(time.RFC3339))
	}
	if c.ClaimedAt.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("%w: claim of %s by %s dated %s, more than %s from now", ErrClaimFuture, c.IP, c.PeerID, c.ClaimedAt.Format(time.RFC3339), MaxClockSkew)
	}
	if b := c.Cert.BoundIP(); c.Cert.IP != "" && b != ip {
		return nil, fmt.Errorf("%w: %s claims %s, its certificate binds %q", ErrNotBoundIP, c.PeerID, ip, c.Cert.IP)
	}
	if c.Expires.After(now.Add(MaxLease + MaxClockSkew)) {
		return nil, fmt.Errorf("%w: lease of %s by %s ends at %s, more than %s from now", ErrLeaseTooLong, c.IP, c.PeerID, c.Expires.Format(time.RFC3339), MaxLease)
	}
	ks, ok := v.specs[id]
	if !ok && !v.unknown {
		return nil, fmt.Errorf("%w: %s (claim of %s by %s)", ErrUnknownCladnet, id, ip, c.PeerID)
	}
	if ok {
		if !ks.ownerOnly && (!ks.prefix.IsValid() || !isUsableHost(ks.prefix, ip)) {
			return nil, fmt.Errorf("%w: %s in %s", ErrOutOfRange, ip, ks.spec.CIDR)
		}
		p, _ := c.Peer() // checked by ParseClaim
		if err := c.Cert.Verify(ks.spec, p, now); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrClaimCert, err)
		}
		if v.revoked != nil && v.revoked(c.Cert) {
			return nil, fmt.Errorf("%w: claim of %s by %s (%s)", ErrClaimRevoked, c.IP, c.Cert.HostName, c.PeerID)
		}
		if v.holder != nil && !c.Released {
			if held, member := v.holder(id, p); member && held != ip {
				return nil, fmt.Errorf("%w: %s (%s) claims %s but holds %v", ErrExtraClaim, c.Cert.HostName, c.PeerID, ip, held)
			}
		}
	}
	return c, nil
}

// Select implements record.Validator. Invalid records never win; among the
// valid ones the winner is found in two steps:
//
//  1. Each peer's newest record supersedes its older ones: the highest Seq
//     wins (a release, published with a higher Seq, supersedes the live
//     claim it ends; a renewal supersedes the previous lease).
//  2. Between the remaining records of different peers a live claim beats a
//     released one; then a claim whose certificate binds the address
//     (Certificate.IP) beats one whose certificate does not; then the
//     earliest ClaimedAt wins; ties go to the lowest peer ID, comparing the
//     raw peer ID bytes (the multihash, not its base58 text).
//
// Remaining ties (identical Seq of one peer, which an honest node never
// publishes twice with different content) go to the lowest record bytes.
// The result depends only on the set of values, never on their order; if the
// winning value occurs more than once the lowest index is returned, so a
// re-published identical record replaces the stored copy in kad-dht.
func (v *Validator) Select(key string, values [][]byte) (int, error) {
	if len(values) == 0 {
		return 0, errors.New("select IP claim: no values")
	}
	now := v.now()
	type cand struct {
		i int
		c *Claim
	}
	newest := make(map[string]cand) // per peer
	var firstErr error
	for i, val := range values {
		c, err := v.check(key, val, now)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if cur, ok := newest[c.PeerID]; !ok || samePeerBetter(c, val, cur.c, values[cur.i]) {
			newest[c.PeerID] = cand{i, c}
		}
	}
	if len(newest) == 0 {
		return 0, fmt.Errorf("select IP claim: no valid record: %w", firstErr)
	}
	var best cand
	for _, cd := range newest {
		if best.c == nil || otherPeerBetter(cd.c, best.c) {
			best = cd
		}
	}
	for i, val := range values {
		if bytes.Equal(val, values[best.i]) {
			return i, nil
		}
	}
	return best.i, nil
}

// samePeerBetter orders two records of one peer: the higher Seq wins, then
// the lower record bytes.
func samePeerBetter(a *Claim, av []byte, b *Claim, bv []byte) bool {
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return bytes.Compare(av, bv) < 0
}

// otherPeerBetter orders the newest records of two different peers: a live
// claim beats a released one, then a bound claim an unbound one, then the
// earliest ClaimedAt wins, then the lowest raw peer ID.
func otherPeerBetter(a, b *Claim) bool {
	if a.Released != b.Released {
		return !a.Released
	}
	pa, _ := a.Peer()
	pb, _ := b.Peer()
	return Better(MemberClaim{Peer: pa, ClaimedAt: a.ClaimedAt, Bound: a.Bound()},
		MemberClaim{Peer: pb, ClaimedAt: b.ClaimedAt, Bound: b.Bound()})
}

// Bound reports whether the claimant's certificate binds the claimed address.
func (c *Claim) Bound() bool {
	return c.Cert != nil && c.Cert.IP != "" && c.Cert.IP == c.IP
}
