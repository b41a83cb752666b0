package relay

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Attack (L2): a peer without a valid certificate asks a relay for
// reservations again and again. Before: each attempt cost a certificate
// fetch (a stream of up to 5 s) and an INFO line. After: the refusal is
// cached for RefuseTTL: one fetch, one line, every attempt counted.
func TestACLNegativeCache(t *testing.T) {
	a, b := owner(t, "alpha"), owner(t, "beta")
	rh, _ := newHost(t)
	acl, err := NewACL(rh, []string{a.Spec.OwnerKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t)
	forged, err := cladnet.SignCertificate(b.Key, a.Spec, h.ID(), "m", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(forged)
	var asked atomic.Int64
	h.SetStreamHandler(CertProtocol, func(s network.Stream) {
		asked.Add(1)
		defer s.Close()
		_, _ = s.Write(body)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rh.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if acl.AllowReserve(h.ID(), nil) {
			t.Fatal("forged certificate admitted")
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("certificate fetched %d times for 20 attempts, want 1", n)
	}
	if r := acl.Refused(); r[RefusedBadCert] != 1 || r[RefusedRecently] != 19 {
		t.Errorf("refusals = %v, want 1 %s and 19 %s", r, RefusedBadCert, RefusedRecently)
	}
	// After the TTL the peer is asked again (it may have been a transient
	// failure).
	acl.mu.Lock()
	acl.refusedUntil[h.ID()] = time.Now().Add(-time.Second)
	acl.mu.Unlock()
	acl.AllowReserve(h.ID(), nil)
	if n := asked.Load(); n != 2 {
		t.Errorf("after the TTL: %d fetches, want 2", n)
	}
}

func TestACLNegativeCacheBounded(t *testing.T) {
	a := owner(t, "alpha")
	rh, _ := newHost(t)
	acl, err := NewACL(rh, []string{a.Spec.OwnerKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range maxRefusedCache * 2 {
		acl.remember(peer.ID(rune(i)), now)
	}
	if n := len(acl.refusedUntil); n > maxRefusedCache {
		t.Fatalf("negative cache holds %d peers, bound %d", n, maxRefusedCache)
	}
}
