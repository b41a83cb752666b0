package relay

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cladnet"
)

func newHost(t *testing.T) (host.Host, crypto.PrivKey) {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, k
}

func owner(t *testing.T, name string) *cladnet.Owner {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), name, "", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// member makes a host that shows a certificate signed by signer for spec.
func member(t *testing.T, spec *cladnet.Spec, signer *cladnet.Owner, ttl time.Duration) host.Host {
	t.Helper()
	h, _ := newHost(t)
	c, err := cladnet.SignCertificate(signer.Key, spec, h.ID(), "m", nil, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	ServeCert(h, c)
	return h
}

func reserve(t *testing.T, h, r host.Host) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	_, err := client.Reserve(ctx, h, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()})
	return err
}

func TestRelayServesOnlyAllowedMembers(t *testing.T) {
	a, b := owner(t, "alpha"), owner(t, "beta")
	rh, _ := newHost(t)
	svc, err := Start(rh, []string{a.Spec.OwnerKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reserve(t, member(t, a.Spec, a, time.Hour), rh); err != nil {
		t.Fatalf("member of an allowed CLADNet refused: %v", err)
	}
	for name, h := range map[string]host.Host{
		"member of a CLADNet not allowed here":       member(t, b.Spec, b, time.Hour),
		"certificate forged for the allowed CLADNet": member(t, a.Spec, b, time.Hour),
		"expired certificate":                        member(t, a.Spec, a, time.Nanosecond),
		"no certificate at all":                      func() host.Host { h, _ := newHost(t); return h }(),
	} {
		err := reserve(t, h, rh)
		var re client.ReservationError
		if err == nil {
			t.Errorf("%s: reservation granted", name)
		} else if !errors.As(err, &re) {
			t.Errorf("%s: unexpected error %v", name, err)
		}
	}
	// Counted by reason: forged and expired are both bad certificates.
	want := map[string]uint64{RefusedCladnet: 1, RefusedBadCert: 2, RefusedNoCert: 1}
	if got := svc.Refused(); len(got) != len(want) || got[RefusedCladnet] != 1 || got[RefusedBadCert] != 2 || got[RefusedNoCert] != 1 {
		t.Errorf("refused by reason: %v, want %v", got, want)
	}
}

func TestStartRefusesOpenRelay(t *testing.T) {
	rh, _ := newHost(t)
	if _, err := Start(rh, nil, nil); err == nil {
		t.Fatal("a relay without owner keys (an open proxy) was started")
	}
	if _, _, err := ParseOwnerKey(base64.StdEncoding.EncodeToString([]byte("short"))); err == nil {
		t.Fatal("a malformed owner key was accepted")
	}
}

func TestRelayRefusesRevoked(t *testing.T) {
	a := owner(t, "alpha")
	rh, _ := newHost(t)
	var revoked sync.Map // peer ID string → struct{}
	svc, err := Start(rh, []string{a.Spec.OwnerKey}, nil, WithRevoked(func(c *cladnet.Certificate) bool {
		_, ok := revoked.Load(c.PeerID)
		return ok
	}))
	if err != nil {
		t.Fatal(err)
	}
	m := member(t, a.Spec, a, time.Hour)
	if err := reserve(t, m, rh); err != nil {
		t.Fatalf("member refused before revocation: %v", err)
	}
	// Revoked after its certificate was verified and cached.
	revoked.Store(m.ID().String(), struct{}{})
	if err := reserve(t, m, rh); err == nil {
		t.Fatal("revoked member got a reservation")
	}
	// And on first sight.
	m2 := member(t, a.Spec, a, time.Hour)
	revoked.Store(m2.ID().String(), struct{}{})
	if err := reserve(t, m2, rh); err == nil {
		t.Fatal("revoked newcomer got a reservation")
	}
	if n := svc.Refused()[RefusedRevoked]; n != 2 {
		t.Errorf("refused as revoked: %d, want 2", n)
	}
}

func TestRelayRefusesCircuitsAcrossCladnets(t *testing.T) {
	a, b := owner(t, "alpha"), owner(t, "beta")
	rh, _ := newHost(t)
	svc, err := Start(rh, []string{a.Spec.OwnerKey, b.Spec.OwnerKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := member(t, a.Spec, a, time.Hour)
	if err := reserve(t, dst, rh); err != nil {
		t.Fatalf("member of alpha refused: %v", err)
	}
	dial := func(src host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := src.Connect(ctx, peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}); err != nil {
			t.Fatal(err)
		}
		circuit := ma.StringCast("/p2p/" + rh.ID().String() + "/p2p-circuit")
		var addrs []ma.Multiaddr
		for _, ra := range rh.Addrs() {
			addrs = append(addrs, ra.Encapsulate(circuit))
		}
		return src.Connect(ctx, peer.AddrInfo{ID: dst.ID(), Addrs: addrs})
	}
	if err := dial(member(t, b.Spec, b, time.Hour)); err == nil {
		t.Fatal("a member of beta got a circuit to a member of alpha")
	}
	if n := svc.Refused()[RefusedCrossCladnet]; n == 0 {
		t.Errorf("refused by reason: %v, want a %s", svc.Refused(), RefusedCrossCladnet)
	}
	if err := dial(member(t, a.Spec, a, time.Hour)); err != nil {
		t.Fatalf("a fellow member of alpha got no circuit: %v", err)
	}
}
