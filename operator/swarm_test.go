package operator_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/operator"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type member struct {
	name string
	m    *daemon.Member
	dev  *forwardtest.Device
}

// startMember joins with a token issued through the operator's API only.
func startMember(t *testing.T, token string) *member {
	t.Helper()
	return startMemberCloud(t, token, cost.CloudInfo{ProviderName: "aws", RegionID: "us-east-1", PublicIP: "127.0.0.1"})
}

// startMemberCloud joins with the cloud information the join flags give.
func startMemberCloud(t *testing.T, token string, cloud cost.CloudInfo) *member {
	t.Helper()
	tok, err := cladnet.DecodeToken(token)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tok.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	boot, err := node.ParseBootstrap(tok.Bootstrap)
	if err != nil || len(boot) == 0 {
		t.Fatalf("token's bootstrap %v: %v", tok.Bootstrap, err)
	}
	opened := make(chan *forwardtest.Device, 1)
	m, err := daemon.Start(context.Background(), daemon.Config{
		Token: tok, Key: key, StateDir: t.TempDir(), ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot,
		Heartbeat: 500 * time.Millisecond, MissedHeartbeats: 4, Lease: time.Hour,
		Cloud: cloud, TUN: true, OpenDevice: func(name string, mtu int) (daemon.Device, error) {
			d := forwardtest.NewDevice(name, mtu)
			opened <- d
			return d, nil
		},
		Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("start %s: %v", tok.Cert.HostName, err)
	}
	t.Cleanup(m.Stop)
	return &member{name: tok.Cert.HostName, m: m, dev: <-opened}
}

func packet(src, dst netip.Addr, seq uint32) []byte {
	b := make([]byte, 64)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[8], b[9] = 64, 17
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint32(b[20:24], seq)
	return b
}

func send(a, b *member, seq uint32) error {
	want := packet(a.m.IP(), b.m.IP(), seq)
	if err := a.dev.Inject(want, time.Second); err != nil {
		return err
	}
	for {
		got, err := b.dev.Recv(2 * time.Second)
		if err != nil {
			return fmt.Errorf("%s -> %s: %w", a.name, b.name, err)
		}
		if string(got) == string(want) {
			return nil
		}
	}
}

// TestOperatorInSwarm: operator + bootstrap + 2 members on 127.0.0.1 with
// in-memory devices. The CLADNet and the tokens come from the operator's
// API only; the operator lists the members, its rule-type change reaches
// them, the data plane outlives it, and a restart from DIR holds the same
// CLADNets.
func TestOperatorInSwarm(t *testing.T) {
	_, boot := startBootstrap(t)
	dir := t.TempDir()
	opCfg := func(c *operator.Config) {
		c.Bootstrap, c.Heartbeat, c.MissedHeartbeats = boot, 500*time.Millisecond, 4
	}
	op := startOp(t, dir, opCfg)
	u := op.URL()

	code, m := call(t, "POST", u+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24","ruleType":"basic"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	id := m["cladnetId"].(string)
	var ms []*member
	for _, h := range []string{"vm1", "vm2"} {
		code, m := call(t, "POST", u+"/v1/cladnet/"+id+"/token", `{"hostName":"`+h+`","ttl":"1h"}`)
		if code != 200 {
			t.Fatal(code, m)
		}
		ms = append(ms, startMember(t, m["token"].(string)))
	}

	eventually(t, 30*time.Second, "the operator lists both members tunneling", func() error {
		code, m := call(t, "GET", u+"/v1/cladnet/lab/peer", "")
		peers, _ := m["peers"].([]any)
		if code != 200 || len(peers) != 2 {
			return fmt.Errorf("%d %v", code, m)
		}
		for _, p := range peers {
			p := p.(map[string]any)
			if p["state"] != "tunneling" || p["ip"] == "" || p["hostId"] == op.PeerID().String() {
				return fmt.Errorf("peer %v", p)
			}
		}
		return nil
	})
	for _, mb := range ms {
		code, m := call(t, "GET", u+"/v1/cladnet/lab/peer/"+mb.name, "")
		if code != 200 || m["hostId"] != mb.m.Membership().Self().String() || m["ip"] != mb.m.IP().String() {
			t.Errorf("peer %s: %d %v", mb.name, code, m)
		}
	}
	if code, _ := call(t, "GET", u+"/v1/cladnet/lab/peer/"+operator.OperatorHost, ""); code != 404 {
		t.Errorf("the operator lists itself: %d", code)
	}
	eventually(t, 20*time.Second, "packets between the members", func() error {
		return send(ms[0], ms[1], 1)
	})

	// The rule type changes through cb-network's PUT; every member follows.
	for _, mb := range ms {
		if rt := mb.m.Rules().RuleType; rt != cost.RuleBasic {
			t.Fatalf("%s starts with rule type %s", mb.name, rt)
		}
	}
	if code, m := call(t, "PUT", u+"/v1/cladnet/"+id, `{"ruleType":"cost-prioritized"}`); code != 200 {
		t.Fatal(code, m)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "members apply cost-prioritized", func() error {
		for _, mb := range ms {
			if rt := mb.m.Rules().RuleType; rt != cost.RuleCostPrioritized {
				return fmt.Errorf("%s: %s", mb.name, rt)
			}
		}
		return nil
	})
	t.Logf("rule type in force on both members %s after the PUT", time.Since(start).Round(time.Millisecond))

	// The operator stops: the data plane does not notice.
	op.Stop()
	for seq := uint32(2); seq < 5; seq++ {
		if err := send(ms[0], ms[1], seq); err != nil {
			t.Fatalf("operator down: %v", err)
		}
		if err := send(ms[1], ms[0], seq); err != nil {
			t.Fatalf("operator down: %v", err)
		}
	}

	// Restarted from DIR: the same CLADNet, its rule type, its members.
	op2 := startOp(t, dir, opCfg)
	code, m = call(t, "GET", op2.URL()+"/v1/cladnet", "")
	l, _ := m["cladnetSpecifications"].([]any)
	if code != 200 || len(l) != 1 || l[0].(map[string]any)["cladnetId"] != id || l[0].(map[string]any)["ruleType"] != "cost-prioritized" {
		t.Fatalf("after restart: %d %v", code, m)
	}
	if op2.PeerID() != op.PeerID() {
		t.Errorf("operator peer ID changed across restart: %s -> %s", op.PeerID(), op2.PeerID())
	}
	eventually(t, 30*time.Second, "the restarted operator lists both members", func() error {
		_, m := call(t, "GET", op2.URL()+"/v1/cladnet/lab/peer", "")
		if peers, _ := m["peers"].([]any); len(peers) != 2 {
			return fmt.Errorf("%v", m)
		}
		return nil
	})
}

// startBootstrap starts a bootstrap node on 127.0.0.1 for the test and
// returns it with its multiaddrs (each with /p2p/ID), as members and the
// operator take them.
func startBootstrap(t *testing.T) (*daemon.Bootstrap, []string) {
	t.Helper()
	bk, _, _ := crypto.GenerateEd25519Key(nil)
	b, err := daemon.StartBootstrap(context.Background(), daemon.BootstrapConfig{Key: bk, ListenIPs: []string{"127.0.0.1"}, AnyCladnet: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	var boot []string
	for _, a := range b.Node.Host.Addrs() {
		boot = append(boot, a.String()+"/p2p/"+b.Node.Host.ID().String())
	}
	return b, boot
}
