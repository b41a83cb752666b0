package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
)

// thief is an attacking member: a plain libp2p node with a valid
// certificate of the lab's CLADNet (issued notBefore ago, as for a member
// that joined long before its victims), running the membership protocol
// with whatever it chooses to announce.
type thief struct {
	key  crypto.PrivKey
	id   peer.ID
	cert *cladnet.Certificate
	node *node.Node
	mem  *overlay.Membership
}

func (l *lab) thief(t *testing.T, host string, age time.Duration, claim func() []byte) *thief {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	cert, err := cladnet.SignCertificate(l.owner.Key, l.owner.Spec, id, host, nil, time.Now(), time.Hour+age,
		cladnet.WithNotBefore(time.Now().Add(-age)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"},
		Bootstrap: []peer.AddrInfo{l.info}, PubSub: true,
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator().WithUnknown()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	mem, err := overlay.StartMembership(context.Background(), overlay.MembershipConfig{
		Spec: l.owner.Spec, Cert: cert, Key: k, Node: n, Heartbeat: 500 * time.Millisecond, MissedHeartbeats: 4,
		Logger: quiet(), ClaimRecord: claim,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mem.Close)
	// The thief's own node would refuse to publish what it forges: it
	// accepts everything instead, as a modified build would.
	topic := overlay.TopicName(l.owner.Spec.ID)
	_ = n.PubSub.UnregisterTopicValidator(topic)
	if err := n.PubSub.RegisterTopicValidator(topic, func(context.Context, peer.ID, *pubsub.Message) pubsub.ValidationResult {
		return pubsub.ValidationAccept
	}); err != nil {
		t.Fatal(err)
	}
	return &thief{key: k, id: id, cert: cert, node: n, mem: mem}
}

// keepsAddress fails unless v holds ip for all of d and b keeps delivering
// to v there.
func keepsAddress(t *testing.T, v, b *member, ip netip.Addr, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for seq := uint32(1); time.Now().Before(deadline); seq++ {
		if got := v.ip(); got != ip {
			t.Fatalf("%s lost %s to the thief (now at %v) after %s", v.name, ip, got, d-time.Until(deadline))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := send(b, v, 900); err != nil {
		t.Fatalf("after the attack %s no longer reaches %s at %s: %v", b.name, v.name, ip, err)
	}
}

func rejected(m *member, reason string) uint64 { return m.m.Membership().Rejected()[reason] }

// H1, as the security review ran it: a member with a valid certificate and
// no DHT claim at all announces the victim's address with claimedAt 2 Jan
// 1970. Before the fix the victim gave the address up after about a second
// and the bystander routed it to the thief.
func TestAttackAnnouncedAddressWithoutClaim(t *testing.T) {
	t.Parallel()
	l := newLab(t, "")
	v, b := l.member("victim"), l.member("bystander")
	v.start()
	b.start()
	eventually(t, 20*time.Second, "victim and bystander converge", converged([]*member{v, b}))
	ip := v.ip()

	th := l.thief(t, "thief", time.Hour, nil)
	th.mem.SetOverlayIP(ip, time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC))
	eventually(t, 10*time.Second, "victim and bystander refuse the thief's announcement", func() error {
		if rejected(v, overlay.RejectClaim) == 0 || rejected(b, overlay.RejectClaim) == 0 {
			return fmt.Errorf("rejected: victim %v, bystander %v", v.m.Membership().Rejected(), b.m.Membership().Rejected())
		}
		return nil
	})
	keepsAddress(t, v, b, ip, 5*time.Second)
	if _, ok := b.m.Membership().Member(th.id); ok {
		t.Fatal("the bystander admitted the thief's announcement")
	}
	t.Logf("victim kept %s; rejected %s: victim %d, bystander %d", ip, overlay.RejectClaim,
		rejected(v, overlay.RejectClaim), rejected(b, overlay.RejectClaim))
}

// H1 with a genuine DHT claim: the thief signs a valid claim on the
// victim's address, backdated to its certificate's NotBefore (an hour
// before the victim joined), publishes it in the DHT and announces it. The
// victim, whose claim the rest of the CLADNet has seen for a while, keeps
// the address: a claim first seen long after the time it states is dated
// when it was first seen.
func TestAttackBackdatedClaim(t *testing.T) {
	t.Parallel()
	l := newLab(t, "")
	v, b := l.member("victim"), l.member("bystander")
	v.start()
	b.start()
	eventually(t, 20*time.Second, "victim and bystander converge", converged([]*member{v, b}))
	ip := v.ip()

	var rec []byte
	th := l.thief(t, "thief", time.Hour, func() []byte { return rec })
	c := &ipam.Claim{CladnetID: l.owner.Spec.ID, IP: ip.String(), Cert: th.cert, ClaimedAt: th.cert.NotBefore,
		Seq: 1, Expires: time.Now().Add(time.Hour)}
	if err := c.Sign(th.key); err != nil {
		t.Fatal(err)
	}
	var err error
	if rec, err = c.Marshal(); err != nil {
		t.Fatal(err)
	}
	// The thief's claim is valid everywhere: it reaches the DHT.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventually(t, 10*time.Second, "the thief's claim to land in the DHT", func() error {
		return th.node.DHT.PutValue(ctx, ipam.ClaimKey(l.owner.Spec.ID, ip), rec)
	})
	th.mem.SetOverlayIP(ip, c.ClaimedAt)
	eventually(t, 10*time.Second, "the bystander to see the thief's claim and date it", func() error {
		if n := b.m.Membership().Backdated(); n == 0 {
			return fmt.Errorf("no backdated claim counted yet")
		}
		return nil
	})
	keepsAddress(t, v, b, ip, 5*time.Second)
	t.Logf("victim kept %s; backdated claims counted: victim %d, bystander %d, victim allocator %d", ip,
		v.m.Membership().Backdated(), b.m.Membership().Backdated(), v.m.BackdatedClaims())
}
