package remote

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.NoTransports, libp2p.DefaultTransports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func newOwner(t *testing.T, name string) *cladnet.Owner {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), name, "10.9.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func str(s string) *string { return &s }

func signed(t *testing.T, key ed25519.PrivateKey, spec *cladnet.Spec, target peer.ID, seq uint64, at time.Time) *Details {
	t.Helper()
	d := &Details{CladnetID: spec.ID, PeerID: target.String(), Seq: seq, IssuedAt: at,
		Patch: cost.CloudPatch{ProviderName: str("gcp"), RegionID: str("asia-northeast3")}}
	if err := d.Sign(key); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDetailsVerify: only the owner's signature over this very document,
// for this CLADNet and this node, recently issued, verifies.
func TestDetailsVerify(t *testing.T) {
	ow, other := newOwner(t, "lab"), newOwner(t, "other")
	self := newHost(t).ID()
	now := time.Now()
	if err := signed(t, ow.Key, ow.Spec, self, 1, now).Verify(ow.Spec, self, now); err != nil {
		t.Fatalf("owner-signed document refused: %v", err)
	}
	tampered := signed(t, ow.Key, ow.Spec, self, 1, now)
	tampered.Patch.RegionID = str("us-east-1")
	for name, tc := range map[string]struct {
		d    *Details
		want error
	}{
		"signed by another key":   {signed(t, other.Key, ow.Spec, self, 1, now), ErrDetailsBadSignature},
		"patch changed after":     {tampered, ErrDetailsBadSignature},
		"unsigned":                {&Details{CladnetID: ow.Spec.ID, PeerID: self.String(), Seq: 1, IssuedAt: now}, ErrDetailsBadSignature},
		"for another node":        {signed(t, ow.Key, ow.Spec, newHost(t).ID(), 1, now), ErrDetailsForeign},
		"for another CLADNet":     {signed(t, other.Key, other.Spec, self, 1, now), ErrDetailsForeign},
		"issued an hour ago":      {signed(t, ow.Key, ow.Spec, self, 1, now.Add(-time.Hour)), ErrDetailsStale},
		"issued an hour from now": {signed(t, ow.Key, ow.Spec, self, 1, now.Add(time.Hour)), ErrDetailsStale},
	} {
		if err := tc.d.Verify(ow.Spec, self, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// TestGuardRefusesReplays: each sequence once, growing, also after a
// restart (the state directory keeps the last one).
func TestGuardRefusesReplays(t *testing.T) {
	dir := t.TempDir()
	g, err := OpenGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Accept(5); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{5, 4} {
		if err := g.Accept(seq); !errors.Is(err, ErrDetailsReplayed) {
			t.Errorf("sequence %d after 5: %v", seq, err)
		}
	}
	if err := g.Accept(6); err != nil {
		t.Fatal(err)
	}
	g2, err := OpenGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Accept(6); !errors.Is(err, ErrDetailsReplayed) {
		t.Errorf("sequence 6 again after a restart: %v", err)
	}
	var s Sequencer
	now := time.Now()
	if a, b := s.Next(now), s.Next(now); b <= a {
		t.Errorf("sequencer: %d then %d", a, b)
	}
}

// TestStreams: over real libp2p streams on loopback, the member applies an
// owner-signed document once, refuses its replay and a non-owner one, and
// answers the networking rule only to a certificate of its CLADNet.
func TestStreams(t *testing.T) {
	ow, other := newOwner(t, "lab"), newOwner(t, "other")
	mh, oh := newHost(t), newHost(t)
	oh.Peerstore().AddAddrs(mh.ID(), mh.Addrs(), time.Hour)
	guard, err := OpenGuard(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cloud := cost.CloudInfo{PublicIP: "192.0.2.7"}
	srv := Serve(Config{
		Host: mh, Spec: ow.Spec, Guard: guard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ApplyDetails: func(p cost.CloudPatch) (cost.CloudInfo, error) {
			cloud = p.Apply(cloud)
			return cloud, nil
		},
		NetworkingRule: func() (api.NetworkingRule, error) {
			return api.NetworkingRule{CladnetID: ow.Spec.ID, HostID: []string{"x"}}, nil
		},
	})
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	ctx := context.Background()

	d := signed(t, ow.Key, ow.Spec, mh.ID(), 10, time.Now())
	ci, err := PushDetails(ctx, oh, mh.ID(), d)
	if err != nil {
		t.Fatal(err)
	}
	if ci.ProviderName != "gcp" || ci.RegionID != "asia-northeast3" || ci.PublicIP != "192.0.2.7" {
		t.Fatalf("merged: %+v", ci)
	}
	if _, err := PushDetails(ctx, oh, mh.ID(), d); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "already applied") {
		t.Errorf("replay: %v", err)
	}
	if _, err := PushDetails(ctx, oh, mh.ID(), signed(t, other.Key, ow.Spec, mh.ID(), 11, time.Now())); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "owner key") {
		t.Errorf("non-owner document: %v", err)
	}

	now := time.Now()
	mine, err := cladnet.SignCertificate(ow.Key, ow.Spec, oh.ID(), "operator", nil, now, time.Hour, cladnet.WithRole(cladnet.RoleOperator))
	if err != nil {
		t.Fatal(err)
	}
	nr, err := FetchNetworkingRule(ctx, oh, mh.ID(), ow.Spec.ID, mine)
	if err != nil || len(nr.HostID) != 1 {
		t.Fatalf("networking rule: %+v %v", nr, err)
	}
	foreign, _ := cladnet.SignCertificate(other.Key, other.Spec, oh.ID(), "operator", nil, now, time.Hour)
	stolen, _ := cladnet.SignCertificate(ow.Key, ow.Spec, mh.ID(), "vm1", nil, now, time.Hour)
	for name, c := range map[string]*cladnet.Certificate{"no certificate": nil, "another CLADNet's": foreign, "another peer's": stolen} {
		if _, err := FetchNetworkingRule(ctx, oh, mh.ID(), ow.Spec.ID, c); !errors.Is(err, ErrRefused) {
			t.Errorf("%s certificate: %v", name, err)
		}
	}

	// Closed (the member stopped): nothing answers, and that is not a
	// refusal.
	srv.Close()
	closed = true
	if _, err := PushDetails(ctx, oh, mh.ID(), signed(t, ow.Key, ow.Spec, mh.ID(), 12, time.Now())); err == nil || errors.Is(err, ErrRefused) {
		t.Errorf("after Close: %v", err)
	}
}
