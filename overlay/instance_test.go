package overlay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/node"
)

// conflictLog records the conflicts a membership reports.
type conflictLog struct {
	mu sync.Mutex
	cs []IdentityConflict
}

func (l *conflictLog) add(c *IdentityConflict) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cs = append(l.cs, *c)
}

func (l *conflictLog) get() []IdentityConflict {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]IdentityConflict(nil), l.cs...)
}

// startMemberKey starts a member with a given key and certificate.
func startMemberKey(t *testing.T, o *cladnet.Owner, k crypto.PrivKey, cert *cladnet.Certificate, boot []peer.AddrInfo, log *conflictLog) *testMember {
	t.Helper()
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot, PubSub: true})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMember{name: cert.HostName, node: n}
	t.Cleanup(func() { tm.stop() })
	tm.mem, err = StartMembership(context.Background(), MembershipConfig{Spec: o.Spec, Cert: cert, Key: k, Node: n,
		Heartbeat: testHeartbeat, MissedHeartbeats: testMissed, OnIdentityConflict: log.add,
		Logger: testLog(cert.HostName)})
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestTwinInstancesOneStops: a member's token started twice (one key, one
// certificate, two libp2p hosts) with a third member as the witness. The
// copy, which started later, is told it is the newer one; the original is
// told it keeps running.
func TestTwinInstancesOneStops(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, "vm1", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var origLog, copyLog, witnessLog conflictLog
	orig := startMemberKey(t, o, k, cert, boot, &origLog)
	k2, _, _ := crypto.GenerateEd25519Key(nil)
	id2, _ := peer.IDFromPrivateKey(k2)
	cert2, _ := cladnet.SignCertificate(o.Key, o.Spec, id2, "vm2", nil, time.Now(), time.Hour)
	witness := startMemberKey(t, o, k2, cert2, boot, &witnessLog)
	waitFor(t, 20*time.Second, "two members", func() bool {
		return len(orig.mem.Members()) == 2 && len(witness.mem.Members()) == 2
	})
	twin := startMemberKey(t, o, k, cert, boot, &copyLog)
	waitFor(t, 30*time.Second, "both instances told", func() bool {
		return len(copyLog.get()) > 0 && len(origLog.get()) > 0
	})
	oi, ostart := orig.mem.Instance()
	ti, _ := twin.mem.Instance()
	c := copyLog.get()[0]
	if !c.Newer || c.OtherInstance != oi || !c.OtherStarted.Equal(ostart) || c.Witness != witness.node.Host.ID() {
		t.Errorf("the copy was told %+v; want newer, other instance %s started %s", c, oi, ostart)
	}
	if !errors.Is(&c, ErrIdentityConflict) || !strings.Contains(c.Error(), "cbnode cladnet issue") || !strings.Contains(c.Error(), "127.0.0.1") {
		t.Errorf("conflict error %q", c.Error())
	}
	if c := origLog.get()[0]; c.Newer || c.OtherInstance != ti {
		t.Errorf("the original was told %+v; want older, other instance %s", c, ti)
	}
	if got := orig.mem.IdentityConflicts(); len(got) != 1 || got[0].Newer {
		t.Errorf("original's IdentityConflicts %+v", got)
	}
	if len(witnessLog.get()) != 0 {
		t.Errorf("the witness reported a conflict of its own: %+v", witnessLog.get())
	}
	// The copy goes; the original's gossip reaches the witness again.
	twin.stop()
	if err := orig.mem.SetCloud(cost.CloudInfo{ProviderName: "aws", RegionID: "after-the-twin"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the original's new announcement at the witness", func() bool {
		mem, ok := witness.mem.Member(id)
		return ok && mem.Ann.Cloud.RegionID == "after-the-twin" && mem.Ann.Instance == oi
	})
}

func testLog(name string) *slog.Logger {
	if os.Getenv("OVERLAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testMembership is a membership with no network, for the judging logic.
func testMembership(t *testing.T) (*Membership, crypto.PrivKey) {
	o := newOwner(t, "lab")
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	return &Membership{cfg: MembershipConfig{Spec: o.Spec, Key: k}, self: id, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		instance: "bbbb", started: time.Now().UTC().Add(-time.Minute), conflicts: map[string]IdentityConflict{}}, k
}

func proofBy(t *testing.T, m *Membership, k crypto.PrivKey, inst string, started, at time.Time) seenInstance {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(k)
	p := instanceProof{CladnetID: m.cfg.Spec.ID, PeerID: id.String(), Instance: inst, Started: started, Time: at}
	if err := p.sign(k); err != nil {
		t.Fatal(err)
	}
	return seenInstance{Proof: p, Addr: "/ip4/10.250.0.12/tcp/7460"}
}

func TestJudgeInstanceReports(t *testing.T) {
	m, k := testMembership(t)
	now := time.Now()
	other, _, _ := crypto.GenerateEd25519Key(nil)
	earlier, later := m.started.Add(-time.Hour), m.started.Add(time.Second)
	tamper := proofBy(t, m, k, "aaaa", earlier, now)
	tamper.Proof.Started = later
	for _, tc := range []struct {
		name  string
		o     seenInstance
		newer bool
		err   bool
		none  bool
	}{
		{name: "earlier instance: this one is newer", o: proofBy(t, m, k, "aaaa", earlier, now), newer: true},
		{name: "later instance: this one is older", o: proofBy(t, m, k, "cccc", later, now)},
		{name: "same start, lower instance ID wins", o: proofBy(t, m, k, "aaaa", m.started, now), newer: true},
		{name: "same start, higher instance ID loses", o: proofBy(t, m, k, "cccc", m.started, now)},
		{name: "own instance", o: proofBy(t, m, k, "bbbb", m.started, now), none: true},
		{name: "signed by another key", o: proofBy(t, m, other, "aaaa", earlier, now), err: true},
		{name: "edited after signing", o: tamper, err: true},
		{name: "signed before this instance started (replay of a previous run)", o: proofBy(t, m, k, "aaaa", earlier, m.started.Add(-time.Second)), err: true},
		{name: "stale", o: proofBy(t, m, k, "aaaa", earlier, now.Add(-3*time.Minute)), err: true},
	} {
		c, err := m.judge(tc.o, now)
		switch {
		case tc.err:
			if err == nil {
				t.Errorf("%s: accepted: %+v", tc.name, c)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.none:
			if c != nil {
				t.Errorf("%s: conflict %+v", tc.name, c)
			}
		case c == nil || c.Newer != tc.newer || c.OtherAddr != "10.250.0.12":
			t.Errorf("%s: conflict %+v, want newer %v at 10.250.0.12", tc.name, c, tc.newer)
		}
	}
	// Reported once per other instance, however often witnesses repeat it.
	var calls int
	m.cfg.OnIdentityConflict = func(*IdentityConflict) { calls++ }
	o := proofBy(t, m, k, "aaaa", earlier, now)
	m.consider("witness", []seenInstance{o, o}, now)
	m.consider("witness", []seenInstance{o}, now)
	if calls != 1 || len(m.IdentityConflicts()) != 1 {
		t.Fatalf("%d reports, %d conflicts; want 1 and 1", calls, len(m.IdentityConflicts()))
	}
}

func TestHeartbeatWithInstanceFits(t *testing.T) {
	m, _ := testMembership(t)
	m.instance = newInstanceID()
	b := `{"kind":"heartbeat","seq":18446744073709551615,"inst":"` + m.instance + `"}`
	if len(b) > maxHeartbeatSize {
		t.Fatalf("heartbeat of %d bytes, limit %d", len(b), maxHeartbeatSize)
	}
}
