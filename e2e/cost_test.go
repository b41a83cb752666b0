//go:build linux

package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// costLab: members a and b share a "VPC" (one switch, same cloud info) and
// each has a public address (an elastic IP on the "internet" switch); c is
// in another VPC behind a NAT gateway.
type costLab struct {
	lab     *cluster.Cluster
	a, b, c *cluster.Node
	ip      map[*cluster.Node]netip.Addr
}

func newCostLab(t *testing.T) *costLab {
	t.Helper()
	c := newRouterLab(t, cluster.Options{Prefix: "cbcost", Relay: true, RuleType: "cost-prioritized", LogLevel: "debug"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wan, err := c.Lab.Switch("wan", wanNet)
	must(err)
	vpc1, err := c.Lab.Switch("vpc1", netip.MustParsePrefix("10.10.0.0/24"))
	must(err)
	boot, err := c.AddHost("boot", wan, 1)
	must(err)
	must(c.StartBootstrap(ctx, boot))
	l := &costLab{lab: c}
	inVPC := func(name string, idx int) *cluster.Node {
		n, err := c.AddHost(name, vpc1, idx)
		must(err)
		must(wan.Attach(n.Host, wan.Addr(idx))) // its public IP
		n.Args = []string{"--provider", "aws", "--region", "ap-northeast-2", "--zone", "ap-northeast-2a",
			"--vpc", "vpc-1", "--subnet-id", "subnet-1", "--private-ip", vpc1.Addr(idx).Addr().String(),
			"--public-ip", wan.Addr(idx).Addr().String()}
		must(c.AddMember(ctx, n))
		return n
	}
	l.a = inVPC("a", 11)
	l.b = inVPC("b", 12)
	lan, err := c.Lab.Switch("vpc2", netip.MustParsePrefix("10.20.0.0/24"))
	must(err)
	r, err := c.Lab.Router("natgw", wan, wan.Addr(21), lan, lan.Addr(1), netlab.Cone)
	must(err)
	l.c, err = c.AddHost("c", lan, 10)
	must(err)
	must(l.c.Host.SetDefaultRoute(r.LANAddr().Addr()))
	l.c.Args = []string{"--provider", "aws", "--region", "ap-northeast-2", "--zone", "ap-northeast-2b",
		"--vpc", "vpc-2", "--subnet-id", "subnet-2", "--private-ip", "10.20.0.10", "--public-ip", wan.Addr(21).Addr().String()}
	must(c.AddMember(ctx, l.c))
	must(c.StartAll())
	converge(t, c)
	l.ip = ips(t, c)
	return l
}

func (l *costLab) rule(t *testing.T, from, to *cluster.Node) api.PathRule {
	t.Helper()
	var nr api.NetworkingRule
	if err := from.CLIJSON(context.Background(), &nr, "networking-rule"); err != nil {
		t.Fatal(err)
	}
	for _, r := range nr.Rules {
		if r.HostName == to.Name {
			return r
		}
	}
	t.Fatalf("%s's networking rule has no row for %s", from.Name, to.Name)
	return api.PathRule{}
}

// waitScope waits until from's live stream to `to` has the scope and
// selected address wanted.
func (l *costLab) waitScope(t *testing.T, from, to *cluster.Node, scope string, prefix netip.Prefix, within time.Duration) api.PathRule {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := l.rule(t, from, to)
		ip, _ := netip.ParseAddr(r.SelectedIP)
		if r.PeerScope == scope && prefix.Contains(ip) && r.Remote != "" && !r.Relayed {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s -> %s: want scope %s via %s, have %+v", from.Name, to.Name, scope, prefix, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *costLab) push(t *testing.T, n *cluster.Node, doc []byte) ([]byte, error) {
	t.Helper()
	f := filepath.Join(l.lab.Dir, fmt.Sprintf("rules-%d.json", time.Now().UnixNano()))
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.CLI(ctx, "rules", "push", f)
}

func (l *costLab) signRules(t *testing.T, rulesFile string) []byte {
	t.Helper()
	f := filepath.Join(l.lab.Dir, "rules-in.json")
	if err := os.WriteFile(f, []byte(rulesFile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.a.Host.Run(ctx, bin, "cladnet", "rules", "lab", "--dir", l.lab.CladnetDir(), "--file", f)
	if err != nil {
		t.Fatalf("sign rules: %v: %s", err, out)
	}
	return out
}

// costReport reads from's cost report.
func costReport(t *testing.T, from *cluster.Node) cost.Report {
	t.Helper()
	var rep cost.Report
	if err := from.CLIJSON(context.Background(), &rep, "cost"); err != nil {
		t.Fatal(err)
	}
	return rep
}

func peerUsage(rep cost.Report, name string) cost.PeerReport {
	for _, p := range rep.Peers {
		if p.Peer == name {
			return p
		}
	}
	return cost.PeerReport{}
}

// sink counts the bytes TCP clients send to ip:port inside n.
func sink(t *testing.T, n *cluster.Node, ip netip.Addr, port uint16) *atomic.Int64 {
	t.Helper()
	var ln net.Listener
	if err := n.Host.Exec(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					got.Add(int64(k))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return &got
}

// dialFrom connects from n's overlay address to dst:port.
func dialFrom(t *testing.T, n *cluster.Node, src, dst netip.Addr, port uint16) net.Conn {
	t.Helper()
	var conn net.Conn
	if err := n.Host.Exec(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestCostAwarePaths(t *testing.T) {
	l := newCostLab(t)
	vpcNet := netip.MustParsePrefix("10.10.0.0/24")

	// cost-prioritized: a and b share the VPC and talk over their private
	// addresses; a and c over the public path.
	r := l.waitScope(t, l.a, l.b, "intra", vpcNet, 20*time.Second)
	t.Logf("a -> b: %s via %s, class %s, $%g/GB: %s", r.PeerScope, r.Remote, r.Class, r.PricePerGB, r.Reason)
	r = l.waitScope(t, l.a, l.c, "inter", wanNet, 20*time.Second)
	t.Logf("a -> c: %s via %s, class %s, $%g/GB: %s", r.PeerScope, r.Remote, r.Class, r.PricePerGB, r.Reason)

	// A rules document signed by another key is refused and changes nothing.
	_, other, _ := ed25519.GenerateKey(nil)
	var spec struct {
		ID string `json:"cladnetId"`
	}
	b, err := os.ReadFile(filepath.Join(l.lab.CladnetDir(), "lab", "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	forged := cost.DefaultRules(spec.ID, cost.RuleBasic)
	forged.Version, forged.IssuedAt = math.MaxUint32, time.Now()
	if err := cost.SignRules(other, forged); err != nil {
		t.Fatal(err)
	}
	fb, _ := forged.Marshal()
	if out, err := l.push(t, l.a, fb); err == nil {
		t.Fatalf("a accepted rules signed by another key: %s", out)
	}
	if r := l.rule(t, l.a, l.b); r.PeerScope != "intra" {
		t.Fatalf("forged rules changed the path: %+v", r)
	}

	// A TCP stream over cbnet0 runs from a to b while the rules change.
	count := sink(t, l.b, l.ip[l.b], 9100)
	conn := dialFrom(t, l.a, l.ip[l.a], l.ip[l.b], 9100)
	sendErr := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, 32<<10)
		for {
			select {
			case <-stop:
				sendErr <- nil
				return
			default:
			}
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(buf); err != nil {
				sendErr <- err
				return
			}
			time.Sleep(2 * time.Millisecond) // ~16 MB/s: keep the lab responsive
		}
	}()
	time.Sleep(time.Second)

	// Switching the CLADNet to basic by a signed update moves a<->b to
	// the public path while the stream keeps going.
	signed := l.signRules(t, `{"ruleType": "basic"}`)
	if out, err := l.push(t, l.b, signed); err != nil { // pushed to b; gossip brings it to a
		t.Fatalf("push rules: %v: %s", err, out)
	}
	before := count.Load()
	moved := time.Now()
	r = l.waitScope(t, l.a, l.b, "inter", wanNet, 20*time.Second)
	t.Logf("a -> b moved to %s via %s after %s: %s", r.PeerScope, r.Remote, time.Since(moved).Round(time.Millisecond), r.Reason)
	time.Sleep(2 * time.Second)
	select {
	case err := <-sendErr:
		t.Fatalf("the TCP stream over cbnet0 broke during the path change: %v", err)
	default:
	}
	if after := count.Load(); after <= before {
		t.Fatalf("no bytes arrived after the path change (%d before, %d after)", before, after)
	}
	close(stop)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}

	// Metering: a known transfer on the public path is counted within 2 %
	// and priced at the table's price.
	time.Sleep(1500 * time.Millisecond) // let the meter sample the stream's tail
	rep0 := peerUsage(costReport(t, l.a), "b")
	const transfer = 50 << 20
	conn2 := dialFrom(t, l.a, l.ip[l.a], l.ip[l.b], 9100)
	n, err := io.CopyN(conn2, zeroReader{}, transfer)
	if err != nil || n != transfer {
		t.Fatalf("transfer: %d bytes, %v", n, err)
	}
	conn2.Close()
	time.Sleep(1500 * time.Millisecond)
	rep1 := peerUsage(costReport(t, l.a), "b")
	rule := l.rule(t, l.a, l.b)
	dBytes := float64(rep1.Bytes - rep0.Bytes)
	if dev := math.Abs(dBytes-transfer) / transfer; dev > 0.02 {
		t.Fatalf("metered %0.f bytes for a %d-byte transfer (%.2f %% off)", dBytes, transfer, dev*100)
	}
	dSpent := rep1.SpentUSD - rep0.SpentUSD
	want := dBytes / cost.BytesPerGB * rule.PricePerGB
	if math.Abs(dSpent-want) > 1e-8 {
		t.Fatalf("spent $%g for %0.f bytes at $%g/GB, want $%g", dSpent, dBytes, rule.PricePerGB, want)
	}
	t.Logf("metered %0.f bytes for a %d-byte transfer (%+.2f %%), $%.6f at $%g/GB (%s)", dBytes, transfer, (dBytes-transfer)/transfer*100, dSpent, rule.PricePerGB, rule.Class)
	out, _ := l.a.CLI(context.Background(), "cost")
	t.Logf("cbnode cost on a:\n%s", out)
	out, _ = l.a.CLI(context.Background(), "networking-rule")
	t.Logf("cbnode networking-rule on a:\n%s", out)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
