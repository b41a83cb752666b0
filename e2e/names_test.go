//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// getent is 'getent hosts name' inside n's namespace, where the node's own
// hosts file (netlab Host.HostsFile) is /etc/hosts: the address it gives,
// or an error when the name does not resolve.
func getent(ctx context.Context, n *cluster.Node, name string) (netip.Addr, error) {
	out, err := n.Host.Run(ctx, "getent", "hosts", name)
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return netip.Addr{}, fmt.Errorf("getent hosts %s: %q", name, out)
	}
	return netip.ParseAddr(f[0])
}

// lookupA asks the DNS server at server (UDP, from inside n's namespace) for
// name's A record: the addresses and the rcode.
func lookupA(n *cluster.Node, server netip.Addr, name string) (ips []string, rcode int, err error) {
	err = n.Host.Exec(func() error {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(q, netip.AddrPortFrom(server, 53).String())
		if err != nil {
			return err
		}
		rcode = r.Rcode
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				ips = append(ips, a.A.String())
			}
		}
		return nil
	})
	return ips, rcode, err
}

// TestNamesOnTheOverlay: 'getent hosts n2' on n1 gives n2's overlay IP (the
// hosts-file block), n1's and n3's DNS servers on their overlay addresses
// answer n2.lab.cbnode (n3's across the overlay), and once n2 is killed
// and dropped from the members table the name resolves nowhere.
func TestNamesOnTheOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	netlab.RequireCommand(t, "getent")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbl3", Nodes: 3, LogLevel: "debug",
		Heartbeat: 500 * time.Millisecond, JoinArgs: []string{"--missed-heartbeats", "2"}})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	addr := ips(t, c)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	waitFor := func(what string, d time.Duration, cond func() error) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			err := cond()
			if err == nil {
				return time.Since(start)
			}
			if time.Since(start) > d {
				t.Fatalf("after %s: %s: %v", d, what, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, name := range []string{"n2", "n2.lab.cbnode", "n2.cbnode", "N2.Lab.CBNode"} {
		waitFor("getent hosts "+name+" on n1", 30*time.Second, func() error {
			ip, err := getent(ctx, n1, name)
			if err == nil && ip != addr[n2] {
				err = fmt.Errorf("%s → %s, want %s", name, ip, addr[n2])
			}
			return err
		})
	}
	if ip, err := getent(ctx, n1, "n1"); err != nil || ip != addr[n1] {
		t.Errorf("getent hosts n1 on n1: %s %v, want %s", ip, err, addr[n1])
	}
	for _, server := range []*cluster.Node{n1, n3} {
		waitFor(fmt.Sprintf("DNS on %s's overlay address", server.Name), 30*time.Second, func() error {
			got, rc, err := lookupA(n1, addr[server], "n2.lab.cbnode.")
			if err == nil && (len(got) != 1 || got[0] != addr[n2].String()) {
				err = fmt.Errorf("n2.lab.cbnode. → %v (rcode %s), want %s", got, dns.RcodeToString[rc], addr[n2])
			}
			return err
		})
	}
	if _, rc, err := lookupA(n1, addr[n1], "example.com."); err != nil || rc != dns.RcodeRefused {
		t.Errorf("example.com. at n1's DNS: rcode %s, %v; want REFUSED", dns.RcodeToString[rc], err)
	}
	hosts, err := n1.Host.HostsFile()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(hosts)
	t.Logf("n1's hosts file:\n%s", b)

	// n2 dies without a word.
	if err := n2.Proc.Kill(); err != nil {
		t.Fatal(err)
	}
	n2.Proc = nil
	took := waitFor("n2 gone from n1's names", 90*time.Second, func() error {
		if ip, err := getent(ctx, n1, "n2"); err == nil {
			return fmt.Errorf("getent hosts n2 still gives %s", ip)
		}
		if got, rc, err := lookupA(n1, addr[n1], "n2.lab.cbnode."); err != nil || rc != dns.RcodeNameError {
			return fmt.Errorf("n1's DNS: n2.lab.cbnode. → %v rcode %s, %v; want NXDOMAIN", got, dns.RcodeToString[rc], err)
		}
		return nil
	})
	t.Logf("n2's name stopped resolving on n1 %s after the kill", took.Round(100*time.Millisecond))
	if _, err := getent(ctx, n1, "n2.lab.cbnode"); err == nil {
		t.Error("getent hosts n2.lab.cbnode still resolves")
	}
	if ip, err := getent(ctx, n1, "n3"); err != nil || ip != addr[n3] {
		t.Errorf("getent hosts n3 after n2's loss: %s %v, want %s", ip, err, addr[n3])
	}
	b, _ = os.ReadFile(hosts)
	t.Logf("n1's hosts file after the loss:\n%s", b)
}
