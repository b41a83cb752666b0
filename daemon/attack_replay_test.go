package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

// Old rules replayed: a member keeps genuinely signed but superseded
// documents (the rules before a price change, the revocation list before
// a node was revoked) and re-publishes them on their gossip topics. The
// members must keep the newer ones (validators accept only newer
// versions; 4114d6d fixed the rules validator, which accepted any signed
// document).
func TestAttackReplayedRulesAndRevocations(t *testing.T) {
	t.Parallel()
	l := newLab(t, cost.RuleBasic)
	a, b := l.member("a"), l.member("b")
	a.start()
	b.start()
	eventually(t, 20*time.Second, "a and b converge", converged([]*member{a, b}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rules := func(v uint64, rt string) []byte {
		r := cost.DefaultRules(l.owner.Spec.ID, rt)
		r.Version = v
		if err := cost.SignRules(l.owner.Key, r); err != nil {
			t.Fatal(err)
		}
		out, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	k, _, _ := crypto.GenerateEd25519Key(nil)
	revokedID, _ := peer.IDFromPrivateKey(k)
	list := func(v uint64, revoked ...peer.ID) []byte {
		rl := &cladnet.Revocations{CladnetID: l.owner.Spec.ID, Version: v, IssuedAt: time.Now()}
		for _, p := range revoked {
			rl.Entries = append(rl.Entries, cladnet.Revocation{PeerID: p.String(), RevokedAt: time.Now()})
		}
		if err := rl.Sign(l.owner.Key); err != nil {
			t.Fatal(err)
		}
		out, err := rl.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	oldRules, newRules := rules(1, cost.RuleCostPrioritized), rules(2, cost.RuleBasic)
	oldList, newList := list(1), list(2, revokedID)
	for _, doc := range [][]byte{oldRules, newRules} {
		if _, err := a.m.SubmitRules(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	for _, doc := range [][]byte{oldList, newList} {
		if _, err := a.m.SubmitRevocation(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
	current := func(m *member) error {
		if r := m.m.Rules(); r.Version != 2 || r.RuleType != cost.RuleBasic {
			return fmt.Errorf("%s holds rules v%d (%s)", m.name, r.Version, r.RuleType)
		}
		if rl := m.m.Revocation(); rl == nil || rl.Version != 2 || !rl.RevokedPeer(revokedID) {
			return fmt.Errorf("%s holds revocation list %+v", m.name, rl)
		}
		return nil
	}
	eventually(t, 10*time.Second, "both hold rules v2 and revocation list v2", func() error {
		for _, m := range []*member{a, b} {
			if err := current(m); err != nil {
				return err
			}
		}
		return nil
	})

	th := l.thief(t, "replayer", time.Hour, nil)
	rt, err := th.node.PubSub.Join(overlay.RulesTopic(l.owner.Spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	vt, err := th.node.PubSub.Join(overlay.RevocationsTopic(l.owner.Spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the replayer to reach both topics' meshes", func() error {
		if len(rt.ListPeers()) == 0 || len(vt.ListPeers()) == 0 {
			return fmt.Errorf("rules peers %d, revocation peers %d", len(rt.ListPeers()), len(vt.ListPeers()))
		}
		return nil
	})
	for range 5 {
		if err := rt.Publish(ctx, oldRules); err != nil {
			t.Fatal(err)
		}
		if err := vt.Publish(ctx, oldList); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	for _, m := range []*member{a, b} {
		if err := current(m); err != nil {
			t.Fatalf("after the replay: %v", err)
		}
	}
	// The replayer's messages do reach the members: a newer rules
	// document it forwards (signed by the owner) is applied.
	if err := rt.Publish(ctx, rules(3, cost.RuleCostPrioritized)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a and b to apply rules v3 sent through the replayer", func() error {
		for _, m := range []*member{a, b} {
			if r := m.m.Rules(); r.Version != 3 {
				return fmt.Errorf("%s holds rules v%d", m.name, r.Version)
			}
		}
		return nil
	})
}
