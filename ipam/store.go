package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"google.golang.org/protobuf/proto"
)

// Defaults of StoreLimits.
const (
	// MaxStoredClaimSize bounds one claim record a node stores for others
	// (a claim with its certificate is well under 1 KiB).
	MaxStoredClaimSize = 2 << 10
	// DefaultPerCladnet caps the claims stored for a CLADNet whose range
	// the node does not know (it knows only the owner key, or opted in to
	// any CLADNet); a known range caps them at its host count.
	DefaultPerCladnet = 1024
	// DefaultPerPeer is how many live claims of one peer in one CLADNet a
	// node stores: a member holds one address (a move releases the old
	// one first; a certificate that binds an address holds that one).
	DefaultPerPeer = 1
)

// StoreLimits caps what a Store keeps. Zero fields take the defaults.
type StoreLimits struct {
	MaxRecordSize int // bytes of one stored record (default MaxStoredClaimSize)
	PerCladnet    int // claims of one CLADNet (default: the range's host count, or DefaultPerCladnet)
	PerPeer       int // live claims of one peer in one CLADNet (default DefaultPerPeer)
}

// Reasons a Store refuses a claim (the keys of Store.Refused).
const (
	RefuseSize    = "oversized"
	RefuseCladnet = "cladnet_full"
	RefusePeer    = "peer_holds_another"
)

// ErrStoreFull is matched (errors.Is) by the error a Store returns for a
// claim beyond its caps.
var ErrStoreFull = errors.New("DHT node refuses the IP claim")

// Store is the datastore a DHT node keeps value records in (node.Config
// ValueDatastore), capping the IP claims it accepts for others: per record
// size, per CLADNet and per peer (one live address per peer per CLADNet).
// kad-dht validates and selects a record before it stores it, so a Store
// sees only the record that won its key: a claim that lost (an address
// another peer holds better) never counts against its claimant. Other
// records pass through untouched. Safe for concurrent use.
type Store struct {
	ds.Batching
	v   *Validator
	lim StoreLimits

	mu      sync.Mutex
	byKey   map[ds.Key]stored
	refused sync.Map // reason → *atomic.Uint64
}

type stored struct {
	cladnet, peer, ip string
	expires           time.Time
	released          bool
	size              int
}

var _ ds.Batching = (*Store)(nil)

// NewStore returns an in-memory Store that knows CLADNet ranges from v
// (NewValidator's specs) for the per-CLADNet cap.
func NewStore(v *Validator, lim StoreLimits) *Store {
	if lim.MaxRecordSize <= 0 {
		lim.MaxRecordSize = MaxStoredClaimSize
	}
	if lim.PerPeer <= 0 {
		lim.PerPeer = DefaultPerPeer
	}
	if v == nil {
		v = NewValidator()
	}
	return &Store{Batching: dssync.MutexWrap(ds.NewMapDatastore()), v: v, lim: lim, byKey: map[ds.Key]stored{}}
}

// Put stores value under key, refusing IP claims beyond the caps.
func (s *Store) Put(ctx context.Context, key ds.Key, value []byte) error {
	e, ok := s.claimOf(value)
	if !ok {
		return s.Batching.Put(ctx, key, value)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason, err := s.admit(key, e, time.Now()); err != nil {
		s.count(reason)
		return err
	}
	if err := s.Batching.Put(ctx, key, value); err != nil {
		return err
	}
	s.byKey[key] = e
	return nil
}

// admit checks e against the caps (s.mu held).
func (s *Store) admit(key ds.Key, e stored, now time.Time) (string, error) {
	if e.size > s.lim.MaxRecordSize {
		return RefuseSize, fmt.Errorf("%w: %d bytes, limit %d", ErrStoreFull, e.size, s.lim.MaxRecordSize)
	}
	perCladnet, peerLive := 0, 0
	for k, o := range s.byKey {
		if k == key || o.cladnet != e.cladnet {
			continue
		}
		if !now.Before(o.expires) {
			delete(s.byKey, k) // expired: kad-dht drops it on its next read
			continue
		}
		perCladnet++
		if o.peer == e.peer && !o.released {
			peerLive++
		}
	}
	if limit := s.cladnetCap(e.cladnet); perCladnet >= limit {
		return RefuseCladnet, fmt.Errorf("%w: it stores %d claims of CLADNet %s, the limit", ErrStoreFull, perCladnet, e.cladnet)
	}
	if !e.released && peerLive >= s.lim.PerPeer {
		return RefusePeer, fmt.Errorf("%w: peer %s already holds %d address(es) of CLADNet %s here: a member holds one (release the old one first)", ErrStoreFull, e.peer, peerLive, e.cladnet)
	}
	return "", nil
}

func (s *Store) cladnetCap(id string) int {
	if s.lim.PerCladnet > 0 {
		return s.lim.PerCladnet
	}
	if ks, ok := s.v.specs[id]; ok && ks.prefix.IsValid() {
		return int(newHostRange(ks.prefix).n)
	}
	return DefaultPerCladnet
}

// claimOf decodes a stored kad-dht record; ok is false for records that
// are not IP claims (or do not parse: kad-dht validated them already, so
// that does not happen for claims).
func (s *Store) claimOf(value []byte) (stored, bool) {
	var rec recpb.Record
	if proto.Unmarshal(value, &rec) != nil || !strings.HasPrefix(string(rec.GetKey()), "/"+Namespace+"/") {
		return stored{}, false
	}
	e := stored{size: len(rec.GetValue())}
	id, ip, err := ParseClaimKey(string(rec.GetKey()))
	if err != nil {
		return stored{}, false
	}
	e.cladnet, e.ip = id, ip.String()
	if e.size > s.lim.MaxRecordSize {
		return e, true // refused by size before it is parsed
	}
	c, err := ParseClaim(rec.GetValue())
	if err != nil {
		return stored{}, false
	}
	e.peer, e.expires, e.released = c.PeerID, c.Expires, c.Released
	return e, true
}

// Delete removes key.
func (s *Store) Delete(ctx context.Context, key ds.Key) error {
	s.mu.Lock()
	delete(s.byKey, key)
	s.mu.Unlock()
	return s.Batching.Delete(ctx, key)
}

// Batch returns a batch whose writes go through the caps.
func (s *Store) Batch(ctx context.Context) (ds.Batch, error) {
	return &storeBatch{s: s}, nil
}

type storeBatch struct {
	s   *Store
	ops []func(context.Context) error
}

func (b *storeBatch) Put(_ context.Context, key ds.Key, value []byte) error {
	b.ops = append(b.ops, func(ctx context.Context) error { return b.s.Put(ctx, key, value) })
	return nil
}

func (b *storeBatch) Delete(_ context.Context, key ds.Key) error {
	b.ops = append(b.ops, func(ctx context.Context) error { return b.s.Delete(ctx, key) })
	return nil
}

func (b *storeBatch) Commit(ctx context.Context) error {
	var errs []error
	for _, op := range b.ops {
		errs = append(errs, op(ctx))
	}
	return errors.Join(errs...)
}

func (s *Store) count(reason string) {
	c, _ := s.refused.LoadOrStore(reason, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// Refused returns how many claims the store refused, by reason.
func (s *Store) Refused() map[string]uint64 {
	out := map[string]uint64{}
	s.refused.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// Claims counts the unexpired claims stored for CLADNet id, in all and by
// claimant peer.
func (s *Store) Claims(id string) (total int, byPeer map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	byPeer = map[string]int{}
	for _, e := range s.byKey {
		if e.cladnet == id && now.Before(e.expires) {
			total++
			byPeer[e.peer]++
		}
	}
	return total, byPeer
}

// Holder returns the claimant of the stored claim on ip in CLADNet id ("" if
// none).
func (s *Store) Holder(id string, ip netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byKey {
		if e.cladnet == id && e.ip == ip.String() && time.Now().Before(e.expires) {
			return e.peer
		}
	}
	return ""
}
