package renew

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRenewerRetriesThenRenews: the operator fails twice (a transport-like
// error), then renews; the Renewer backs off, applies the new certificate
// and schedules the next renewal from it. A "revoked" refusal ends Run.
func TestRenewerRetriesThenRenews(t *testing.T) {
	o, err := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	op, me := newHost(t), newHost(t)
	if err := me.Connect(t.Context(), peer.AddrInfo{ID: op.ID(), Addrs: op.Addrs()}); err != nil {
		t.Fatal(err)
	}
	var calls, revoked atomic.Int32
	Serve(op, func(_ context.Context, from peer.ID, old *cladnet.Certificate) (*cladnet.Certificate, error) {
		if revoked.Load() != 0 {
			return nil, Refuse(ReasonRevoked, "%s is revoked", old.HostName)
		}
		if calls.Add(1) <= 2 {
			return nil, errors.New("disk full")
		}
		return cladnet.SignCertificate(o.Key, o.Spec, from, old.HostName, old.Groups, time.Now(), 3*time.Second, cladnet.WithNotBefore(old.NotBefore))
	})
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, me.ID(), "vm1", []string{"web"}, time.Now(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan *cladnet.Certificate, 10)
	r := New(Config{Spec: o.Spec, Host: me, Cert: cert, MinRetry: 50 * time.Millisecond,
		Operators: func() []peer.ID { return []peer.ID{op.ID()} },
		Apply:     func(c *cladnet.Certificate) error { applied <- c; return nil },
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil))})
	if due := time.Until(r.Due()); due <= 0 || due > 3*time.Second {
		t.Fatalf("first renewal due in %s", due)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case c := <-applied:
		if c.HostName != "vm1" || len(c.Groups) != 1 || !c.NotBefore.Equal(cert.NotBefore) || !c.NotAfter.After(cert.NotAfter) {
			t.Fatalf("renewed %+v", c)
		}
		if calls.Load() != 3 {
			t.Fatalf("%d attempts", calls.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal")
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, rtt := r.Renewals()
		if n == 1 && rtt > 0 && r.Cert().NotAfter.After(cert.NotAfter) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewals %d rtt %s", n, rtt)
		}
	}
	revoked.Store(1)
	select {
	case <-done: // Run returned on the refusal
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going after a revoked refusal")
	}
}
