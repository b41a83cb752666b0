package ipam

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"google.golang.org/protobuf/proto"
)

func TestStoreCaps(t *testing.T) {
	ctx := context.Background()
	o := testOwner(t, "lab", "10.9.0.0/29") // 6 hosts
	now := time.Now()
	a, b := newIdentity(t, o, "a"), newIdentity(t, o, "b")
	rec := func(c *Claim) []byte {
		v, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r, _ := proto.Marshal(&recpb.Record{Key: []byte(ClaimKey(c.CladnetID, c.Addr())), Value: v})
		return r
	}
	claim := func(who testIdentity, ip string, mut func(*Claim)) []byte {
		c, _ := signedClaim(t, o.Spec, who, ip, now, uint64(now.UnixNano()), mut)
		return rec(c)
	}
	key := func(ip string) ds.Key { return ds.NewKey("/cbnode/" + strings.ReplaceAll(ip, ".", "-")) }
	s := NewStore(NewValidator(o.Spec), StoreLimits{})
	mustPut := func(k ds.Key, v []byte) {
		t.Helper()
		if err := s.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(key("10.9.0.1"), claim(a, "10.9.0.1", nil))
	mustPut(key("10.9.0.1"), claim(a, "10.9.0.1", nil)) // a renewal of the same key
	if err := s.Put(ctx, key("10.9.0.2"), claim(a, "10.9.0.2", nil)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("second address of one peer: %v, want ErrStoreFull", err)
	}
	mustPut(key("10.9.0.2"), claim(b, "10.9.0.2", nil))
	// A release does not count: a moves.
	mustPut(key("10.9.0.1"), claim(a, "10.9.0.1", func(c *Claim) { c.Released = true }))
	mustPut(key("10.9.0.3"), claim(a, "10.9.0.3", nil))
	// An expired claim frees its slot.
	c, _ := signedClaim(t, o.Spec, b, "10.9.0.4", now.Add(-2*time.Hour), 1, func(c *Claim) { c.Expires = now.Add(-time.Minute) })
	if err := s.Put(ctx, key("10.9.0.4"), rec(c)); err == nil {
		if err := s.Put(ctx, key("10.9.0.5"), claim(b, "10.9.0.5", nil)); !errors.Is(err, ErrStoreFull) {
			t.Fatalf("b holds 10.9.0.2 live: %v", err)
		}
	}
	// Oversized records are refused before they are parsed.
	big := proto.Clone(&recpb.Record{Key: []byte(ClaimKey(o.Spec.ID, mustAddr("10.9.0.6"))), Value: make([]byte, MaxStoredClaimSize+1)})
	raw, _ := proto.Marshal(big.(*recpb.Record))
	if err := s.Put(ctx, key("10.9.0.6"), raw); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("oversized record: %v", err)
	}
	// Other records pass through untouched.
	mustPut(ds.NewKey("/providers/x"), []byte("anything"))
	total, byPeer := s.Claims(o.Spec.ID)
	if total != 3 || byPeer[a.id.String()] != 2 || byPeer[b.id.String()] != 1 {
		t.Fatalf("stored %d claims %v, want 3: a's release and claim, b's claim", total, byPeer)
	}
	got := s.Refused()
	if got[RefusePeer] != 2 || got[RefuseSize] != 1 {
		t.Fatalf("refused %v", got)
	}
	// The per-CLADNet cap is the range's host count.
	small := NewStore(NewValidator(o.Spec), StoreLimits{PerPeer: 10})
	for i, ip := range []string{"10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"} {
		if err := small.Put(ctx, key(ip), claim(a, ip, nil)); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	if err := small.Put(ctx, ds.NewKey("/cbnode/x"), claim(b, "10.9.0.6", nil)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("seventh claim of a 6-host range: %v", err)
	}
	if err := small.Delete(ctx, key("10.9.0.6")); err != nil {
		t.Fatal(err)
	}
	if n, _ := small.Claims(o.Spec.ID); n != 5 {
		t.Fatalf("after a delete: %d claims", n)
	}
}
