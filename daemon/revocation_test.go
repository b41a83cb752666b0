package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/relay"
)

// sees reports whether a lists a member called host.
func sees(a *member, host string) bool {
	for _, p := range a.m.Peers() {
		if p.HostName == host {
			return true
		}
	}
	return false
}

// noDelivery injects a packet from a to b and checks it never arrives.
func noDelivery(t *testing.T, a, b *member, dst string, seq uint32) {
	t.Helper()
	want := packet(a.ip(), b.ip(), seq)
	_ = a.dev.Inject(want, time.Second)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		got, err := b.dev.Recv(time.Until(deadline))
		if err != nil {
			return
		}
		if string(got) == string(want) {
			t.Fatalf("a packet from %s reached %s", a.name, dst)
		}
	}
}

func TestRevokedMemberIsCutOff(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	a, b, c := l.member("a"), l.member("b"), l.member("c")
	ms := []*member{a, b, c}
	for _, mb := range ms {
		mb.start()
	}
	eventually(t, 30*time.Second, "members converge", converged(ms))
	meshDelivers(t, ms, 1)
	cIP := c.ip()

	list := &cladnet.Revocations{CladnetID: l.owner.Spec.ID, Version: 1, Entries: []cladnet.Revocation{
		{PeerID: c.cert.PeerID, HostName: "c", Fingerprint: c.cert.Fingerprint(), Reason: "test", RevokedAt: time.Now()}}}
	if err := list.Sign(l.owner.Key); err != nil {
		t.Fatal(err)
	}
	doc, err := list.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pushed := time.Now()
	got, err := a.client().PushRevocation(t.Context(), doc)
	if err != nil || got.Version != 1 {
		t.Fatalf("push: %v %+v", err, got)
	}
	eventually(t, 5*time.Second, "a and b drop revoked c", func() error {
		for _, x := range []*member{a, b} {
			if sees(x, "c") {
				return fmt.Errorf("%s still lists c", x.name)
			}
		}
		return nil
	})
	t.Logf("push to cut-off (c gone from a's and b's tables): %s", time.Since(pushed).Round(time.Millisecond))
	for _, x := range []*member{a, b} {
		if n := x.m.Status().Rejected["revoked"]; n == 0 {
			t.Errorf("%s counted no revoked member", x.name)
		}
		if r := x.m.Revocation(); r == nil || r.Version != 1 {
			t.Errorf("%s holds list %+v", x.name, r)
		}
	}
	noDelivery(t, c, a, "a", 2)
	noDelivery(t, c, b, "b", 3)
	meshDelivers(t, []*member{a, b}, 4) // the others still talk
	// An older or equal list is refused.
	if _, err := b.client().PushRevocation(t.Context(), doc); err == nil {
		t.Fatal("b accepted the same list again")
	}

	// A newcomer gets the list on join and treats c's address as free.
	d := l.member("d")
	d.start()
	eventually(t, 10*time.Second, "newcomer d gets the list", func() error {
		if r := d.m.Revocation(); r == nil || r.Version != 1 {
			return fmt.Errorf("d holds %+v", r)
		}
		return nil
	})
	// e asks for c's address; it joins with the list its state directory
	// holds, as every member keeps it (no race with the gossip).
	e := l.member("e")
	e.want = cIP
	dir := filepath.Join(e.state, l.owner.Spec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, cladnet.RevocationsFile), doc, 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	eventually(t, 20*time.Second, "e holds c's old address", func() error {
		if e.ip() != cIP {
			return fmt.Errorf("e has %v, want %s (state %s)", e.ip(), cIP, e.m.Status().IPAMState)
		}
		return nil
	})
	eventually(t, 20*time.Second, "a, b, d, e converge", converged([]*member{a, b, d, e}))

	// c got the list too before it was cut off: it stopped, and a restart
	// with its old certificate refuses to start.
	c.m.Stop()
	err = c.tryStart()
	t.Logf("restart of c: %v", err)
	if err == nil {
		t.Fatal("revoked c restarted")
	}
	// Started without the list (another state directory, as on a new VM
	// holding the old token): the members refuse to talk to it, but the
	// bootstrap node, which relays for the CLADNet and so holds its list,
	// hands it over on join: c stops with ErrRevoked.
	c.state = t.TempDir()
	c.start()
	select {
	case <-c.m.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("revoked c, started from a fresh state directory, still runs after 15 s")
	}
	if err := c.m.Err(); !errors.Is(err, daemon.ErrRevoked) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "ask the operator for a new join token") {
		t.Fatalf("revoked c from a fresh state directory ended with %v, want a one-line daemon.ErrRevoked naming the fix", err)
	}
	t.Logf("revoked c from a fresh state directory: %v", c.m.Err())
	for _, x := range []*member{a, b, d, e} {
		if sees(x, "c") {
			t.Fatalf("%s admitted c again after its restart", x.name)
		}
	}
}

// TestBootstrapHoldsRevocations: a relaying bootstrap node keeps the
// CLADNet's revocation list (verified with the owner key it relays for,
// saved in its state directory, kept across a restart), refuses
// reservations to revoked members, counted by reason, and does not take a
// list signed by another key.
func TestBootstrapHoldsRevocations(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	a, r := l.member("a"), l.member("r")
	a.start()
	r.start()
	eventually(t, 30*time.Second, "a and r converge", converged([]*member{a, r}))

	// A list signed by another key is refused by the member (so never
	// gossiped) — and the bootstrap node's validator would reject it too.
	other, err := cladnet.Create(t.TempDir(), "other", "10.78.0.0/24", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := &cladnet.Revocations{CladnetID: l.owner.Spec.ID, Version: 9, Entries: []cladnet.Revocation{{PeerID: a.cert.PeerID, RevokedAt: time.Now()}}}
	if err := forged.Sign(other.Key); err != nil {
		t.Fatal(err)
	}
	fb, _ := forged.Marshal()
	if _, err := r.client().PushRevocation(t.Context(), fb); err == nil {
		t.Fatal("a list signed by another key was accepted")
	}

	doc := revocationOf(t, l, r)
	pushed := time.Now()
	if _, err := a.client().PushRevocation(t.Context(), doc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the bootstrap node holds the list", func() error {
		if got := l.boot.Revocations(l.owner.Spec.ID); got == nil || got.Version != 1 {
			return fmt.Errorf("bootstrap holds %+v", got)
		}
		return nil
	})
	t.Logf("push to the bootstrap node holding the list: %s", time.Since(pushed).Round(time.Millisecond))
	saved := filepath.Join(l.bootDir, l.owner.Spec.ID, cladnet.RevocationsFile)
	if b, err := os.ReadFile(saved); err != nil || !strings.Contains(string(b), r.cert.PeerID) {
		t.Fatalf("the bootstrap node's saved list %s: %v %s", saved, err, b)
	}
	// r is revoked: it stops; restarted from a fresh state directory
	// it is told again and stops, and the relay refuses it a reservation.
	select {
	case <-r.m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("revoked r still runs")
	}
	before := l.boot.RelayRefused()[relay.RefusedRevoked]
	if err := reserveOn(t, r, l.info); err == nil {
		t.Fatal("the bootstrap node gave revoked r a reservation")
	}
	if n := l.boot.RelayRefused()[relay.RefusedRevoked]; n <= before {
		t.Errorf("refused as revoked: %d, was %d", n, before)
	}
	if err := reserveOn(t, l.member("z"), l.info); err != nil {
		t.Fatalf("the bootstrap node refused a member not revoked: %v", err)
	}

	// Restarted, the bootstrap node has the list from its state directory
	// before any member republishes it.
	l.restartBoot()
	if got := l.boot.Revocations(l.owner.Spec.ID); got == nil || got.Version != 1 || !got.RevokedCert(r.cert) {
		t.Fatalf("restarted bootstrap node holds %+v, want version 1 revoking r", got)
	}
}

// revocationOf signs version 1 of l's list revoking mb.
func revocationOf(t *testing.T, l *lab, mb *member) []byte {
	t.Helper()
	list := &cladnet.Revocations{CladnetID: l.owner.Spec.ID, Version: 1, Entries: []cladnet.Revocation{
		{PeerID: mb.cert.PeerID, HostName: mb.name, Fingerprint: mb.cert.Fingerprint(), Reason: "test", RevokedAt: time.Now()}}}
	if err := list.Sign(l.owner.Key); err != nil {
		t.Fatal(err)
	}
	doc, err := list.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// reserveOn asks relay at for a reservation from a host with mb's key and
// certificate (mb must not run: it may have stopped, or never started).
func reserveOn(t *testing.T, mb *member, at peer.AddrInfo) error {
	t.Helper()
	if mb.cert == nil {
		id, _ := peer.IDFromPrivateKey(mb.key)
		c, err := cladnet.SignCertificate(mb.l.owner.Key, mb.l.owner.Spec, id, mb.name, nil, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		mb.cert = c
	}
	h, err := libp2p.New(libp2p.Identity(mb.key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	relay.ServeCert(h, mb.cert)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, at); err != nil {
		t.Fatal(err)
	}
	_, err = client.Reserve(ctx, h, at)
	return err
}

func TestExpiredMemberIsDropped(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	a, b := l.member("a"), l.member("b")
	a.start()
	b.start()
	eventually(t, 30*time.Second, "a and b converge", converged([]*member{a, b}))
	x := l.member("x")
	x.ttl = 6 * time.Second // valid to the second: 5-6 s left (joining takes 2-4 s)
	x.start()
	deadline := x.cert.NotAfter
	eventually(t, time.Until(deadline), "x's packet stream is up", func() error {
		if !x.ip().IsValid() || !sees(a, "x") {
			return fmt.Errorf("a does not see x yet")
		}
		return send(x, a, 1)
	})
	t.Logf("stream up %s before x's certificate expires", time.Until(deadline).Round(time.Millisecond))
	eventually(t, time.Until(deadline)+5*time.Second, "a and b drop x once its certificate expired", func() error {
		for _, m := range []*member{a, b} {
			if sees(m, "x") {
				return fmt.Errorf("%s still lists x", m.name)
			}
		}
		return nil
	})
	t.Logf("x dropped %s after its certificate expired", time.Since(deadline).Round(time.Millisecond))
	if n := a.m.Status().Rejected["expired"]; n == 0 {
		t.Error("a counted no expired member")
	}
	noDelivery(t, x, a, "a", 2)
}
