package overlay

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

func newTestOwner(t *testing.T) *cladnet.Owner {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func gossipMsg(b []byte) *pubsub.Message { return &pubsub.Message{Message: &pb.Message{Data: b}} }

func signedRules(t *testing.T, o *cladnet.Owner, v uint64) []byte {
	t.Helper()
	r := cost.DefaultRules(o.Spec.ID, cladnet.RuleBasic)
	r.Version = v
	if err := cost.SignRules(o.Key, r); err != nil {
		t.Fatal(err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRulesValidatorRefusesReplay: a genuinely signed but older rules
// document must not travel on (it used to be accepted and forwarded).
func TestRulesValidatorRefusesReplay(t *testing.T) {
	o := newTestOwner(t)
	r := newRules(o.Spec, t.TempDir(), slog.Default())
	v5, v3 := signedRules(t, o, 5), signedRules(t, o, 3)
	if got := r.validate(context.Background(), "", gossipMsg(v5)); got != pubsub.ValidationAccept {
		t.Fatalf("newer rules: %v", got)
	}
	doc, _ := r.verify(v5)
	r.apply(doc)
	for name, b := range map[string][]byte{"older": v3, "same": v5} {
		if got := r.validate(context.Background(), "", gossipMsg(b)); got != pubsub.ValidationIgnore {
			t.Errorf("%s rules: validator returned %v, want ignore", name, got)
		}
	}
}

func signedList(t *testing.T, o *cladnet.Owner, v uint64, peers ...peer.ID) []byte {
	t.Helper()
	l := &cladnet.Revocations{CladnetID: o.Spec.ID, Version: v}
	for _, p := range peers {
		l.Entries = append(l.Entries, cladnet.Revocation{PeerID: p.String(), RevokedAt: time.Now()})
	}
	if err := l.Sign(o.Key); err != nil {
		t.Fatal(err)
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRevocationsValidatorAndPersistence(t *testing.T) {
	o := newTestOwner(t)
	other, _ := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	k, _, _ := crypto.GenerateEd25519Key(nil)
	p, _ := peer.IDFromPrivateKey(k)
	dir := t.TempDir()
	r := newRevocations(o.Spec, dir, nil)
	if r.Current() != nil || r.RevokedPeer(p) {
		t.Fatal("fresh component revokes")
	}
	ch := r.Changes()
	v2 := signedList(t, o, 2, p)
	if got := r.validate(context.Background(), "", gossipMsg(v2)); got != pubsub.ValidationAccept {
		t.Fatalf("new list: %v", got)
	}
	doc, _ := r.verify(v2)
	if !r.apply(doc) || !r.RevokedPeer(p) {
		t.Fatal("list not applied")
	}
	select {
	case <-ch:
	default:
		t.Fatal("no change signalled")
	}
	for name, b := range map[string][]byte{"older": signedList(t, o, 1), "same": v2} {
		if got := r.validate(context.Background(), "", gossipMsg(b)); got != pubsub.ValidationIgnore {
			t.Errorf("%s list: %v, want ignore", name, got)
		}
	}
	// Forged: another key, or garbage.
	for name, b := range map[string][]byte{"foreign key": signedList(t, other, 9), "garbage": []byte("{")} {
		if got := r.validate(context.Background(), "", gossipMsg(b)); got != pubsub.ValidationReject {
			t.Errorf("%s: %v, want reject", name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, cladnet.RevocationsFile)); err != nil {
		t.Fatal(err)
	}
	// A restart reads it back.
	if r2 := newRevocations(o.Spec, dir, nil); !r2.RevokedPeer(p) || r2.Current().Version != 2 {
		t.Fatal("saved list not loaded")
	}
}
