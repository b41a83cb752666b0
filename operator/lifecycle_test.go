package operator_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/operator"
	"github.com/cloud-barista/cbnode/renew"
)

// lab starts a bootstrap node and an operator holding CLADNet "lab"; it
// returns the operator, its DIR and the CLADNet's ID.
func lab(t *testing.T) (*operator.Operator, string, string) {
	t.Helper()
	_, boot := startBootstrap(t)
	dir := t.TempDir()
	op := startOp(t, dir, func(c *operator.Config) {
		c.Bootstrap, c.Heartbeat, c.MissedHeartbeats = boot, 500*time.Millisecond, 4
	})
	code, m := call(t, "POST", op.URL()+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24","ruleType":"basic"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	return op, dir, m["cladnetId"].(string)
}

// token issues a join token through the operator's API.
func token(t *testing.T, op *operator.Operator, id, host, ttl string) string {
	t.Helper()
	code, m := call(t, "POST", op.URL()+"/v1/cladnet/"+id+"/token", `{"hostName":"`+host+`","ttl":"`+ttl+`"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	return m["token"].(string)
}

// waitMesh waits until every member holds every other (and no more) in its
// members table, and the operator lists them all.
func waitMesh(t *testing.T, op *operator.Operator, ms []*member) {
	t.Helper()
	eventually(t, 30*time.Second, "every member sees every other, the operator lists them", func() error {
		for _, a := range ms {
			if n := len(a.m.Membership().Members()); n != len(ms) {
				return fmt.Errorf("%s has %d rows, want %d", a.name, n, len(ms))
			}
			for _, row := range a.m.Membership().Members() {
				if row.Ann.OverlayIP == "" || row.Ann.State != "tunneling" {
					return fmt.Errorf("%s sees %s %s without address", a.name, row.Ann.HostName, row.Ann.State)
				}
			}
		}
		_, m := call(t, "GET", op.URL()+"/v1/cladnet/lab/peer", "")
		if peers, _ := m["peers"].([]any); len(peers) != len(ms) {
			return fmt.Errorf("operator lists %v", m)
		}
		return nil
	})
}

// TestOperatorRole: the operator's certificate has role operator; members
// know it as an operator, not as a member (no row in the members table
// used for routing, addresses, names and peer counts), and the member API's
// peer list does not show it.
func TestOperatorRole(t *testing.T) {
	op, _, id := lab(t)
	ms := []*member{startMember(t, token(t, op, id, "vm1", "1h")), startMember(t, token(t, op, id, "vm2", "1h"))}
	waitMesh(t, op, ms)
	for _, mb := range ms {
		eventually(t, 10*time.Second, mb.name+" knows the operator", func() error {
			ops := mb.m.Membership().Operators()
			if len(ops) != 1 || ops[0].ID != op.PeerID() || ops[0].Ann.Cert.RoleName() != cladnet.RoleOperator || ops[0].Ann.OverlayIP != "" {
				return fmt.Errorf("operators %v", ops)
			}
			return nil
		})
		for _, row := range mb.m.Membership().Members() {
			if row.ID == op.PeerID() || row.Ann.HostName == operator.OperatorHost {
				t.Errorf("%s lists the operator as a member: %+v", mb.name, row)
			}
		}
		if mb.m.Membership().IsMember(op.PeerID()) {
			t.Errorf("%s takes the operator for a member", mb.name)
		}
		if _, ok := mb.m.Membership().Lookup(operator.OperatorHost); ok {
			t.Errorf("%s finds the operator by name", mb.name)
		}
		if peers := mb.m.Peers(); len(peers) != 2 {
			t.Errorf("%s's peer list (cbnode peers, GET /v1/cladnet/{id}/peer): %d rows, want 2: %+v", mb.name, len(peers), peers)
		}
	}
	eventually(t, 20*time.Second, "packets between the members", func() error { return send(ms[0], ms[1], 1) })
}

// TestOperatorRevocation: the operator revokes vm3 through its API; vm1 and
// vm2 drop it within 5 s and its packets are no longer delivered; a token
// for its host name is refused, a new host name is not.
func TestOperatorRevocation(t *testing.T) {
	op, _, id := lab(t)
	u := op.URL()
	var ms []*member
	for _, h := range []string{"vm1", "vm2", "vm3"} {
		ms = append(ms, startMember(t, token(t, op, id, h, "1h")))
	}
	waitMesh(t, op, ms)
	for seq := uint32(1); seq <= 2; seq++ {
		eventually(t, 20*time.Second, "packets from vm3", func() error {
			if err := send(ms[2], ms[0], seq); err != nil {
				return err
			}
			return send(ms[2], ms[1], seq)
		})
	}
	if code, m := call(t, "GET", u+"/v1/cladnet/lab/revocation", ""); code != 200 || m["version"] != 0.0 || len(m["entries"].([]any)) != 0 {
		t.Fatalf("empty list: %d %v", code, m)
	}
	for body, want := range map[string]int{
		`{"hostName":"nosuch"}`:           404,
		`{}`:                              400,
		`{"hostName":"vm3","peerId":"x"}`: 400,
		`{"peerId":"not-a-peer-id"}`:      400,
	} {
		if code, m := call(t, "POST", u+"/v1/cladnet/lab/revocation", body); code != want {
			t.Errorf("POST revocation %s: %d %v, want %d", body, code, m, want)
		}
	}
	vm3 := ms[2].m.Membership().Self()
	start := time.Now()
	code, m := call(t, "POST", u+"/v1/cladnet/lab/revocation", `{"hostName":"vm3","reason":"compromised"}`)
	if code != 200 || m["version"] != 1.0 {
		t.Fatalf("revoke vm3: %d %v", code, m)
	}
	e := m["entries"].([]any)[0].(map[string]any)
	if e["peerId"] != vm3.String() || e["hostName"] != "vm3" || e["reason"] != "compromised" {
		t.Fatalf("entry %v", e)
	}
	eventually(t, 5*time.Second, "vm1 and vm2 drop vm3", func() error {
		for _, mb := range ms[:2] {
			if _, ok := mb.m.Membership().Member(vm3); ok || mb.m.Membership().IsMember(vm3) {
				return fmt.Errorf("%s still holds vm3", mb.name)
			}
		}
		return nil
	})
	t.Logf("revocation through the operator's API: both members dropped vm3 after %s", time.Since(start).Round(time.Millisecond))

	// vm3's packets are no longer delivered (its daemon may have stopped:
	// a revoked node ends itself).
	want := packet(ms[2].m.IP(), ms[0].m.IP(), 99)
	_ = ms[2].dev.Inject(want, time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		got, err := ms[0].dev.Recv(time.Until(deadline))
		if err == nil && string(got) == string(want) {
			t.Fatal("vm1 received a packet of revoked vm3")
		}
	}
	if err := send(ms[0], ms[1], 100); err != nil {
		t.Fatalf("vm1 -> vm2 after the revocation: %v", err)
	}

	// The operator keeps listing vm3, as revoked.
	if code, m := call(t, "GET", u+"/v1/cladnet/lab/peer", ""); code != 200 || !listsRevoked(m, vm3.String()) {
		t.Errorf("GET peer after the revocation: %d %v: want vm3 with state revoked", code, m)
	}
	if code, m := call(t, "POST", u+"/v1/cladnet/lab/revocation", `{"peerId":"`+vm3.String()+`"}`); code != 409 {
		t.Errorf("revoke again: %d %v, want 409", code, m)
	}
	if code, m := call(t, "GET", u+"/v1/cladnet/lab/revocation", ""); code != 200 || m["version"] != 1.0 || len(m["entries"].([]any)) != 1 {
		t.Errorf("GET revocation: %d %v", code, m)
	}
	if code, m := call(t, "POST", u+"/v1/cladnet/"+id+"/token", `{"hostName":"vm3","ttl":"1h"}`); code != 409 {
		t.Errorf("token for revoked host vm3: %d %v, want 409", code, m)
	} else {
		t.Logf("token for vm3: %d %v", code, m)
	}
	if code, m := call(t, "POST", u+"/v1/cladnet/"+id+"/token", `{"hostName":"vm3","peerId":"`+vm3.String()+`","ttl":"1h"}`); code != 409 {
		t.Errorf("token for revoked peer: %d %v, want 409", code, m)
	}
	if code, m := call(t, "POST", u+"/v1/cladnet/"+id+"/token", `{"hostName":"vm3b","peerId":"`+vm3.String()+`","ttl":"1h"}`); code != 409 {
		t.Errorf("token for revoked peer under a new name: %d %v, want 409", code, m)
	}
	token(t, op, id, "vm3b", "1h") // a new host (and key) may join
}

// TestOperatorRenewal: vm1 holds a 6-second certificate; the operator
// renews it at two thirds of its lifetime, so for 20 s (3+ renewals) it
// stays in everyone's table and keeps exchanging packets. A revoked node's
// renewal is refused, and so is one for a certificate the operator never
// issued.
func TestOperatorRenewal(t *testing.T) {
	op, dir, id := lab(t)
	// 10 s certificates, renewed at two thirds of their life: 3 s to spare
	// for each renewal on a loaded machine.
	tok1, state1 := token(t, op, id, "vm1", "10s"), t.TempDir()
	ms := []*member{startMemberIn(t, tok1, state1), startMember(t, token(t, op, id, "vm2", "1h"))}
	waitMesh(t, op, ms)
	vm1, ip1 := ms[0].m.Membership().Self(), ms[0].m.IP()
	first := ms[0].m.Renewer().Cert().NotAfter
	end := time.Now().Add(25 * time.Second)
	for seq := uint32(1); time.Now().Before(end); seq++ {
		if !ms[1].m.Membership().IsMember(vm1) {
			t.Fatalf("vm2 dropped vm1 after %d packets (vm1's certificate until %s)", seq, ms[0].m.Renewer().Cert().NotAfter.Format(time.RFC3339))
		}
		if ip := ms[0].m.IP(); ip != ip1 {
			t.Fatalf("vm1's address moved: %s -> %s", ip1, ip)
		}
		if err := send(ms[0], ms[1], seq); err != nil {
			t.Fatal(err)
		}
		if err := send(ms[1], ms[0], seq); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	n, rtt := ms[0].m.Renewer().Renewals()
	cur := ms[0].m.Renewer().Cert()
	if n < 3 || !cur.NotAfter.After(first.Add(10*time.Second)) {
		t.Fatalf("%d renewals, certificate until %s (first until %s)", n, cur.NotAfter, first)
	}
	if got := cur.NotAfter.Sub(cur.NotBefore); got > 2*time.Minute {
		t.Errorf("renewed lifetime grew: %s", got)
	}
	if st := ms[0].m.Status(); !st.CertUntil.Equal(cur.NotAfter) {
		t.Errorf("status shows certificate until %s, in use until %s", st.CertUntil, cur.NotAfter)
	}
	t.Logf("vm1: %d renewals in 25 s, last renewal round trip %s", n, rtt)

	// A restart with the token, whose certificate expired long ago, uses
	// the renewed certificate saved in the state directory.
	ms[0].m.Stop()
	if left := time.Until(ms[0].m.Renewer().Cert().NotAfter); left < 2*time.Second {
		t.Fatalf("the renewed certificate has only %s left", left)
	}
	again := startMemberIn(t, tok1, state1)
	if c := again.m.Renewer().Cert(); c.Fingerprint() != ms[0].m.Renewer().Cert().Fingerprint() {
		t.Errorf("restart uses the certificate until %s, not the saved renewal", c.NotAfter)
	}
	eventually(t, 20*time.Second, "restarted vm1 exchanges packets", func() error {
		if !again.m.IP().IsValid() {
			return errors.New("no address yet")
		}
		return send(again, ms[1], 1000)
	})

	// A revoked node's renewal is refused: vm3 (its own libp2p host, the
	// key of its token) asks after the operator revoked it.
	tok, err := cladnet.DecodeToken(token(t, op, id, "vm3", "1h"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tok.PrivateKey()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(t.Context(), op.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ask := func(c *cladnet.Certificate) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := renew.Request(ctx, h, op.PeerID(), tok.Spec, c)
		return err
	}
	// Another node, with a fresh key, presents certificates of others.
	h2, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if err := h2.Connect(t.Context(), op.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ask2 := func(c *cladnet.Certificate) error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := renew.Request(ctx, h2, op.PeerID(), tok.Spec, c)
		return err
	}
	if err := ask(tok.Cert); err != nil {
		t.Fatalf("renewal of vm3 before revocation: %v", err)
	}
	if code, m := call(t, "POST", op.URL()+"/v1/cladnet/lab/revocation", `{"hostName":"vm3"}`); code != 200 {
		t.Fatal(code, m)
	}
	var rf *renew.Refusal
	if err := ask(tok.Cert); !errors.As(err, &rf) || rf.Reason != renew.ReasonRevoked {
		t.Fatalf("renewal of revoked vm3: %v", err)
	} else {
		t.Logf("revoked: %v", err)
	}
	ow, err := cladnet.Load(dir, "lab")
	if err != nil {
		t.Fatal(err)
	}
	stray, err := cladnet.SignCertificate(ow.Key, ow.Spec, h2.ID(), "stray", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ask2(stray); !errors.As(err, &rf) || rf.Reason != renew.ReasonUnknown {
		t.Fatalf("renewal of a certificate never issued: %v", err)
	} else {
		t.Logf("unknown: %v", err)
	}
	if err := ask2(ms[1].m.Renewer().Cert()); !errors.As(err, &rf) || rf.Reason != renew.ReasonInvalid {
		t.Fatalf("renewal of another peer's certificate: %v", err)
	} else {
		t.Logf("another peer's: %v", err)
	}
}

// TestOperatorDeleteDissolves: DELETE signs a dissolution; every member
// ends with ErrDissolved (cbnode join's Run then leaves and removes its
// device) and a restart with the same token is refused.
func TestOperatorDeleteDissolves(t *testing.T) {
	op, _, id := lab(t)
	tok1, state1 := token(t, op, id, "vm1", "1h"), t.TempDir()
	ms := []*member{startMemberIn(t, tok1, state1), startMember(t, token(t, op, id, "vm2", "1h"))}
	waitMesh(t, op, ms)
	start := time.Now()
	code, m := call(t, "DELETE", op.URL()+"/v1/cladnet/lab", "")
	if code != 200 || m["isSucceeded"] != true {
		t.Fatalf("DELETE: %d %v", code, m)
	}
	t.Logf("DELETE: %v", m["message"])
	for _, mb := range ms {
		select {
		case <-mb.m.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still runs 5 s after the DELETE", mb.name)
		}
		if err := mb.m.Err(); !errors.Is(err, daemon.ErrDissolved) {
			t.Fatalf("%s ended with %v", mb.name, err)
		}
	}
	t.Logf("both members ended %s after the DELETE: %v", time.Since(start).Round(time.Millisecond), ms[0].m.Err())
	for _, mb := range ms {
		mb.m.Stop() // what Run does next
		if !mb.dev.Closed() {
			t.Errorf("%s's device is still open", mb.name)
		}
	}
	tok, _ := cladnet.DecodeToken(tok1)
	key, _ := tok.PrivateKey()
	_, err := daemon.Start(context.Background(), daemon.Config{Token: tok, Key: key, StateDir: state1, ListenIPs: []string{"127.0.0.1"}, Logger: quiet()})
	if !errors.Is(err, daemon.ErrDissolved) {
		t.Fatalf("restart after the dissolution: %v", err)
	}
}

// listsRevoked reports whether a {"peers":[...]} answer lists id as revoked.
func listsRevoked(m map[string]any, id string) bool {
	peers, _ := m["peers"].([]any)
	for _, p := range peers {
		if p, ok := p.(map[string]any); ok && p["hostId"] == id && p["state"] == "revoked" {
			return true
		}
	}
	return false
}
