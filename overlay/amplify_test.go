package overlay

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/node"
)

// warnCounter counts WARN records with a given message.
type warnCounter struct {
	msg string
	n   atomic.Int64
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && r.Message == w.msg {
		w.n.Add(1)
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

// verifiedSet stands in for the members table behind an Admission.
type verifiedSet struct {
	mu sync.Mutex
	m  map[peer.ID]bool
}

func (v *verifiedSet) has(p peer.ID) bool { v.mu.Lock(); defer v.mu.Unlock(); return v.m[p] }
func (v *verifiedSet) add(p peer.ID)      { v.mu.Lock(); v.m[p] = true; v.mu.Unlock() }

func plainNode(t *testing.T, boot []peer.AddrInfo, opts ...node.Config) *node.Node {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	cfg := node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot, PubSub: true}
	if len(opts) > 0 {
		cfg.PubSubOptions = opts[0].PubSubOptions
	}
	n, err := node.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func connect(t *testing.T, a, b *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Host.Connect(ctx, peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// toggle joins and leaves topic name on n k times.
func toggle(t *testing.T, n *node.Node, name string, k int) {
	t.Helper()
	for range k {
		topic, err := n.PubSub.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		sub.Cancel()
		time.Sleep(50 * time.Millisecond)
		_ = topic.Close()
	}
}

// Attack (M4): peers toggle their subscription to the rules topic and push
// junk documents at a member. Before: every join made every member
// re-publish the rules to the whole topic (10 toggles: 10 republications
// per member), and every junk document was a WARN line. After: an
// outsider's toggling costs nothing, a verified member's at most one
// republication per RepublishEvery, and junk gets one WARN per sender (the
// rest are counted), the sender losing score until it is graylisted.
func TestAttackRulesAmplificationAndLogFlood(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	adm := NewAdmission()
	vs := &verifiedSet{m: map[peer.ID]bool{}}
	adm.Bind(vs.has)
	a := plainNode(t, boot, node.Config{PubSubOptions: adm.PubSubOptions()})
	warns := &warnCounter{msg: "rejected rules document"}
	r, err := StartRules(context.Background(), o.Spec, a, t.TempDir(), slog.New(warns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	r.SetAdmission(adm)
	doc := cost.DefaultRules(o.Spec.ID, cost.RuleBasic)
	doc.Version, doc.IssuedAt = 2, time.Now()
	if err := cost.SignRules(o.Key, doc); err != nil {
		t.Fatal(err)
	}
	b, _ := doc.Marshal()
	if _, err := r.Submit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	base := r.Republished()

	// An outsider toggles its subscription ten times.
	out := plainNode(t, boot)
	connect(t, out, a)
	toggle(t, out, RulesTopic(o.Spec.ID), 10)
	time.Sleep(1500 * time.Millisecond) // a pending-join check runs every second
	if n := r.Republished() - base; n != 0 {
		t.Errorf("an outsider's 10 subscription toggles made %d republications, want 0", n)
	}

	// A verified member toggles ten times (about 2 s): bounded by the rate.
	mem := plainNode(t, boot)
	vs.add(mem.Host.ID())
	connect(t, mem, a)
	start := time.Now()
	toggle(t, mem, RulesTopic(o.Spec.ID), 10)
	time.Sleep(1500 * time.Millisecond)
	bound := 1 + uint64(time.Since(start)/RepublishEvery)
	if n := r.Republished() - base; n < 1 || n > bound {
		t.Errorf("a member's 10 subscription toggles made %d republications, want 1..%d", n, bound)
	}
	t.Logf("republications: outsider toggling 0, member toggling %d (bound %d)", r.Republished()-base, bound)

	// An outsider pushes 300 junk documents.
	junk := plainNode(t, boot)
	connect(t, junk, a)
	topic, err := junk.PubSub.Join(RulesTopic(o.Spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	time.Sleep(500 * time.Millisecond)
	forged := doc.Clone()
	forged.Version = 3
	forged.RuleType = cost.RuleCostPrioritized // signature no longer verifies
	fb, _ := forged.Marshal()
	for range 300 {
		if err := topic.Publish(context.Background(), fb); err != nil {
			t.Fatal(err)
		}
		forged.Version++
		fb, _ = forged.Marshal()
	}
	forwardtestEventually(t, 5*time.Second, func() bool { return r.Rejected() > 0 })
	time.Sleep(time.Second)
	if n := warns.n.Load(); n != 1 {
		t.Errorf("300 junk documents from one peer: %d WARN lines, want 1", n)
	}
	t.Logf("300 junk documents: %d validated and rejected before the sender was graylisted, %d WARN line(s)", r.Rejected(), warns.n.Load())
	if r.Current().Version != 2 {
		t.Errorf("junk changed the rules: version %d", r.Current().Version)
	}
}

func forwardtestEventually(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
