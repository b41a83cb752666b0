package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
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
	// Started without the list (another state directory), it is not
	// admitted.
	c.state = t.TempDir()
	c.start()
	time.Sleep(3 * time.Second)
	for _, x := range []*member{a, b, d, e} {
		if sees(x, "c") {
			t.Fatalf("%s admitted c again after its restart", x.name)
		}
	}
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
