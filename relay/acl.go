package relay

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cladnet"
)

// ACL admits reservations and circuits only for members of the CLADNets whose
// owner keys the operator allows (`--cladnet-owner`), and circuits only
// between members of the same CLADNet: a relay open to anyone is an open
// proxy. It implements go-libp2p's relay.ACLFilter.
type ACL struct {
	h      host.Host
	log    *slog.Logger
	owners map[string]*cladnet.Spec // CLADNet ID → spec holding only ID and owner key

	// Revoked, optional, reports whether a certificate is revoked (the
	// CLADNet's revocation list): such peers get neither reservations nor
	// circuits, also when their certificate was verified before.
	Revoked func(*cladnet.Certificate) bool

	mu      sync.Mutex
	cache   map[peer.ID]verified
	refused map[string]uint64 // reason → reservations and circuits refused
	// refusedUntil is the negative cache: a peer refused for want of a
	// valid certificate is refused again without a new certificate fetch
	// (a stream of up to 5 s) or log line until then; at most
	// maxRefusedCache peers.
	refusedUntil map[peer.ID]time.Time
}

// RefuseTTL is how long the relay remembers a peer it refused for want of
// a valid certificate (a member whose certificate could not be fetched at
// first — it had not verified the relay yet — is admitted after it).
const RefuseTTL = 10 * time.Second

const maxRefusedCache = 4096

// remember puts p in the negative cache for RefuseTTL.
func (a *ACL) remember(p peer.ID, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.refusedUntil) >= maxRefusedCache {
		for k, until := range a.refusedUntil { // expired ones, else an eighth
			if !now.Before(until) || len(a.refusedUntil) > maxRefusedCache-maxRefusedCache/8 {
				delete(a.refusedUntil, k)
			}
		}
	}
	a.refusedUntil[p] = now.Add(RefuseTTL)
}

// refusedRecently reports whether p is in the negative cache.
func (a *ACL) refusedRecently(p peer.ID, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.refusedUntil[p]
	if ok && !now.Before(until) {
		delete(a.refusedUntil, p)
		return false
	}
	return ok
}

// Reasons the ACL refuses a reservation or a circuit (Refused's keys).
const (
	RefusedNoCert       = "no-certificate"     // the peer showed no certificate
	RefusedCladnet      = "cladnet-not-served" // a CLADNet whose owner key this relay was not given
	RefusedBadCert      = "bad-certificate"    // forged, expired or for another peer
	RefusedRevoked      = "revoked"            // in the CLADNet's revocation list
	RefusedCrossCladnet = "cross-cladnet"      // a circuit between members of two CLADNets
	RefusedRecently     = "refused-recently"   // refused within RefuseTTL: not asked again
)

func (a *ACL) refuse(reason string) {
	a.mu.Lock()
	a.refused[reason]++
	a.mu.Unlock()
}

// Refused returns how many reservations and circuits were refused, by
// reason (the Refused* constants).
func (a *ACL) Refused() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.refused))
	for k, v := range a.refused {
		out[k] = v
	}
	return out
}

type verified struct {
	cladnetID string
	until     time.Time // certificate expiry
	host      string
	cert      *cladnet.Certificate
}

func (a *ACL) revoked(p peer.ID, c *cladnet.Certificate) bool {
	if a.Revoked == nil || !a.Revoked(c) {
		return false
	}
	a.refuse(RefusedRevoked)
	a.log.Info("relay refused: certificate revoked", "peer", p, "host", c.HostName)
	return true
}

// ParseOwnerKey decodes a base64 Ed25519 CLADNet owner public key (the
// "ownerKey" field of a CLADNet's spec) and returns the CLADNet ID it owns.
func ParseOwnerKey(s string) (string, ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return "", nil, fmt.Errorf("CLADNet owner key %q: want the base64 Ed25519 public key from the CLADNet's spec (ownerKey)", s)
	}
	return cladnet.IDFromOwnerKey(b), ed25519.PublicKey(b), nil
}

// NewACL builds an ACL for the given owner keys (base64, as in a spec).
func NewACL(h host.Host, ownerKeys []string, log *slog.Logger) (*ACL, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &ACL{h: h, log: log, owners: map[string]*cladnet.Spec{}, cache: map[peer.ID]verified{}, refused: map[string]uint64{}, refusedUntil: map[peer.ID]time.Time{}}
	for _, k := range ownerKeys {
		id, _, err := ParseOwnerKey(k)
		if err != nil {
			return nil, err
		}
		a.owners[id] = &cladnet.Spec{ID: id, OwnerKey: k}
	}
	return a, nil
}

// member returns the CLADNet p belongs to, asking p for its certificate on
// first sight (it is connected: it is talking to us).
func (a *ACL) member(p peer.ID) (string, bool) {
	now := time.Now()
	a.mu.Lock()
	v, ok := a.cache[p]
	a.mu.Unlock()
	if ok && now.Before(v.until) {
		if a.revoked(p, v.cert) {
			return "", false
		}
		return v.cladnetID, true
	}
	if a.refusedRecently(p, now) {
		a.refuse(RefusedRecently)
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := FetchCert(ctx, a.h, p)
	if err != nil {
		a.refuse(RefusedNoCert)
		a.remember(p, now)
		a.log.Info("relay refused: no certificate", "peer", p, "err", err, "refusedFor", RefuseTTL)
		return "", false
	}
	spec, known := a.owners[c.CladnetID]
	if !known {
		a.refuse(RefusedCladnet)
		a.remember(p, now)
		a.log.Info("relay refused: CLADNet not allowed here", "peer", p, "cladnet", c.CladnetID, "refusedFor", RefuseTTL)
		return "", false
	}
	if err := c.Verify(spec, p, now); err != nil {
		a.refuse(RefusedBadCert)
		a.remember(p, now)
		a.log.Info("relay refused: bad certificate", "peer", p, "err", err, "refusedFor", RefuseTTL)
		return "", false
	}
	if a.revoked(p, c) {
		a.remember(p, now)
		return "", false
	}
	a.mu.Lock()
	a.cache[p] = verified{cladnetID: c.CladnetID, until: c.NotAfter, host: c.HostName, cert: c}
	a.mu.Unlock()
	return c.CladnetID, true
}

// AllowReserve implements relay.ACLFilter.
func (a *ACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	_, ok := a.member(p)
	return ok
}

// AllowConnect implements relay.ACLFilter: both ends in the same CLADNet.
func (a *ACL) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	sc, ok := a.member(src)
	if !ok {
		return false
	}
	dc, ok := a.member(dest)
	if ok && sc != dc {
		a.refuse(RefusedCrossCladnet)
		a.log.Info("relay refused: circuit between two CLADNets", "src", src, "dest", dest)
		return false
	}
	return ok
}
