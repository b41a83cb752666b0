package daemon_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/relay"
)

// outsider is a plain libp2p node with gossipsub and no certificate,
// connected to the given members and subscribed to every CLADNet topic.
type outsider struct {
	n    *node.Node
	msgs map[string]*atomic.Int64 // messages read, by topic
}

func newOutsider(t *testing.T, l *lab, ms ...*member) *outsider {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: []peer.AddrInfo{l.info}, PubSub: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for _, mb := range ms {
		st := mb.m.Status()
		info := peer.AddrInfo{ID: peer.ID(mustDecode(t, st.PeerID))}
		for _, s := range st.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				info.Addrs = append(info.Addrs, a)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.Host.Connect(ctx, info); err != nil {
			t.Fatalf("outsider connect to %s: %v", mb.name, err)
		}
		cancel()
	}
	o := &outsider{n: n, msgs: map[string]*atomic.Int64{}}
	id := l.owner.Spec.ID
	for _, name := range []string{overlay.TopicName(id), overlay.RulesTopic(id), overlay.RevocationsTopic(id), overlay.ControlTopic(id)} {
		topic, err := n.PubSub.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		cnt := new(atomic.Int64)
		o.msgs[name] = cnt
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				msg, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if msg.ReceivedFrom != n.Host.ID() {
					cnt.Add(1)
					t.Logf("outsider got a message on %s from %s (origin %s): %.120s", name, msg.ReceivedFrom, msg.GetFrom(), msg.Data)
				}
			}
		}()
		t.Cleanup(func() { cancel(); <-done; sub.Cancel(); topic.Close() })
	}
	return o
}

func mustDecode(t *testing.T, s string) peer.ID {
	t.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (o *outsider) total() int64 {
	var n int64
	for _, c := range o.msgs {
		n += c.Load()
	}
	return n
}

// Attack (M1): a plain libp2p node without a certificate connects to two
// members and subscribes to the CLADNet's topics while a third member
// joins and the owner pushes new rules. Before: it read every announcement
// (underlay addresses, cloud placement) and the rules. After: it reads
// nothing — the members' peer filter and scores keep it out of the mesh
// and flood publishing (Admission.Refusals counts it) — and the
// certificate protocol refuses it.
func TestAttackOutsiderReadsNoGossip(t *testing.T) {
	l := newLab(t, "basic")
	a, b := l.member("a"), l.member("b")
	a.start()
	b.start()
	eventually(t, 30*time.Second, "a and b converge", converged([]*member{a, b}))

	o := newOutsider(t, l, a, b)
	time.Sleep(time.Second) // subscriptions reach the members
	c := l.member("c")
	c.start()
	eventually(t, 30*time.Second, "a, b and c converge", converged([]*member{a, b, c}))
	pushRules(t, l, a, 2)
	time.Sleep(3 * time.Second) // six heartbeats of each member

	for name, cnt := range o.msgs {
		if n := cnt.Load(); n != 0 {
			t.Errorf("outsider read %d messages on %s", n, name)
		}
	}
	if a.m.Admission().Refusals() == 0 || b.m.Admission().Refusals() == 0 {
		t.Errorf("no peer-filter refusals counted: a %d, b %d", a.m.Admission().Refusals(), b.m.Admission().Refusals())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if cert, err := relay.FetchCert(ctx, o.n.Host, mustDecode(t, a.m.Status().PeerID)); err == nil {
		t.Errorf("outsider read a's certificate: host %s, groups %v", cert.HostName, cert.Groups)
	}
	t.Logf("outsider read %d messages; peer-filter refusals a=%d b=%d", o.total(), a.m.Admission().Refusals(), b.m.Admission().Refusals())
}

// pushRules signs basic rules of the given version and pushes them on mb.
func pushRules(t *testing.T, l *lab, mb *member, version uint64) {
	t.Helper()
	r := cost.DefaultRules(l.owner.Spec.ID, cost.RuleBasic)
	r.Version, r.IssuedAt = version, time.Now()
	if err := cost.SignRules(l.owner.Key, r); err != nil {
		t.Fatal(err)
	}
	doc, _ := r.Marshal()
	if _, err := mb.client().PushRules(t.Context(), doc); err != nil {
		t.Fatal(err)
	}
}
