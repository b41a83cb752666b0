package daemon_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
	"github.com/cloud-barista/cbnode/overlay/names"
)

// lab is a CLADNet with a bootstrap node on 127.0.0.1, whose members run
// in this process with in-memory devices: no root, no TUN, real libp2p.
type lab struct {
	t       *testing.T
	owner   *cladnet.Owner
	boot    *daemon.Bootstrap
	bootKey crypto.PrivKey
	bootDir string // the bootstrap node's state directory
	info    peer.AddrInfo
}

func newLab(t *testing.T, ruleType string) *lab {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", ruleType, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := crypto.GenerateEd25519Key(nil)
	l := &lab{t: t, owner: o, bootKey: k, bootDir: t.TempDir()}
	l.startBoot(0)
	return l
}

// startBoot starts the lab's bootstrap node (relaying for the CLADNet) on
// port (0: any).
func (l *lab) startBoot(port int) {
	l.t.Helper()
	b, err := daemon.StartBootstrap(context.Background(), daemon.BootstrapConfig{
		Key: l.bootKey, ListenIPs: []string{"127.0.0.1"}, Port: port, RelayFor: []string{l.owner.Spec.OwnerKey},
		StateDir: l.bootDir, Logger: quiet(),
	})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(b.Stop)
	l.boot = b
	l.info = peer.AddrInfo{ID: b.Node.Host.ID(), Addrs: b.Node.Host.Addrs()}
}

// restartBoot stops the bootstrap node and starts it again, same key,
// same port, same state directory.
func (l *lab) restartBoot() {
	l.t.Helper()
	port := 0
	for _, a := range l.info.Addrs {
		if v, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			port, _ = strconv.Atoi(v)
			break
		}
	}
	l.boot.Stop()
	l.startBoot(port)
}

func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// member is one member of a lab: its key and state survive a restart.
type member struct {
	l     *lab
	name  string
	key   crypto.PrivKey
	state string
	m     *daemon.Member
	dev   *forwardtest.Device
	relay bool            // relay for fellow members (join --relay)
	cloud *cost.CloudInfo // the join flags' cloud facts (default cloudFacts)
	boot  []peer.AddrInfo // bootstrap nodes, if not the lab's
	log   *slog.Logger    // if not quiet()
	ttl   time.Duration   // certificate lifetime (default one hour)
	cert  *cladnet.Certificate
	want  netip.Addr // join --ip
	dns   names.Options
	// fullMesh is join --full-mesh-max (0: the default; -1: always lazy),
	// tunnelIdle join --tunnel-idle.
	fullMesh   int
	tunnelIdle time.Duration
}

func (l *lab) member(name string) *member {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	return &member{l: l, name: name, key: k, state: l.t.TempDir()}
}

// cloudFacts put every member in one VPC and subnet, with 127.0.0.1 as the
// public address and ::1 as the private one: under the basic rule packets
// ride 127.0.0.1, under cost-prioritized ::1 (the same-subnet path is free).
var cloudFacts = cost.CloudInfo{ProviderName: "aws", RegionID: "us-east-1", AvailabilityZoneID: "use1-az1",
	VirtualNetworkID: "vpc-1", SubnetID: "subnet-1", PrivateIPs: []string{"::1"}, PublicIP: "127.0.0.1"}

func (mb *member) start() {
	mb.l.t.Helper()
	if err := mb.tryStart(); err != nil {
		mb.l.t.Fatal(err)
	}
}

// tryStart starts the member and returns Start's error.
func (mb *member) tryStart() error {
	t := mb.l.t
	t.Helper()
	id, _ := peer.IDFromPrivateKey(mb.key)
	ttl := mb.ttl
	if ttl == 0 {
		ttl = time.Hour
	}
	cert := mb.cert // a restart keeps the certificate
	var err error
	if cert == nil {
		if cert, err = cladnet.SignCertificate(mb.l.owner.Key, mb.l.owner.Spec, id, mb.name, nil, time.Now(), ttl); err != nil {
			t.Fatal(err)
		}
		mb.cert = cert
	}
	opened := make(chan *forwardtest.Device, 1)
	cloud := cloudFacts
	if mb.cloud != nil {
		cloud = *mb.cloud
	}
	boot, log := []peer.AddrInfo{mb.l.info}, quiet()
	if mb.boot != nil {
		boot = mb.boot
	}
	if mb.log != nil {
		log = mb.log
	}
	mb.m, err = daemon.Start(context.Background(), daemon.Config{
		Token: &cladnet.Token{Spec: mb.l.owner.Spec, Cert: cert}, Key: mb.key, StateDir: mb.state,
		ListenIPs: []string{"127.0.0.1", "::1"}, Bootstrap: boot,
		APIAddr:   "127.0.0.1:0",
		Heartbeat: 500 * time.Millisecond, MissedHeartbeats: 4,
		Cloud: cloud, Lease: time.Hour, Relay: mb.relay, RequestedIP: mb.want, DNS: mb.dns,
		FullMeshMax: mb.fullMesh, TunnelIdle: mb.tunnelIdle,
		TUN: true, OpenDevice: func(name string, mtu int) (daemon.Device, error) {
			d := forwardtest.NewDevice(name, mtu)
			opened <- d
			return d, nil
		},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", mb.name, err)
	}
	mb.dev = <-opened
	t.Cleanup(mb.m.Stop)
	return nil
}

func (mb *member) ip() netip.Addr { return mb.m.IP() }

func (mb *member) client() *api.Client { return api.NewClient(mb.m.APIAddr()) }

// eventually polls cond every 50 ms until it holds, failing after timeout.
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

// converged: every member is addressed, tunneling and sees all the others
// tunneling at their addresses.
func converged(ms []*member) func() error {
	return func() error {
		for _, a := range ms {
			if !a.ip().IsValid() {
				return fmt.Errorf("%s has no address", a.name)
			}
			peers := a.m.Peers()
			if len(peers) != len(ms) {
				return fmt.Errorf("%s sees %d members, want %d", a.name, len(peers), len(ms))
			}
			for _, p := range peers {
				if p.State != "tunneling" || p.IP == "" {
					return fmt.Errorf("%s sees %s %s at %q", a.name, p.HostName, p.State, p.IP)
				}
			}
		}
		return nil
	}
}

// packet is a minimal IPv4 datagram from src to dst carrying seq.
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

// send injects a packet on a's device and waits for it on b's.
//
// The overlay carries IP packets best effort, as any link does: a packet in
// flight while a path moves (the first connection between two members may
// land on a path the policy then closes) can be lost, and the inner TCP
// would resend it. So the packet is sent up to three times, each waiting
// two seconds; a pair that delivers none of them fails.
func send(a, b *member, seq uint32) error {
	var err error
	for try := range 3 {
		want := packet(a.ip(), b.ip(), seq<<8|uint32(try))
		if err = a.dev.Inject(want, time.Second); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			var got []byte
			got, err = b.dev.Recv(time.Until(deadline))
			if err != nil {
				err = fmt.Errorf("%s -> %s: %w", a.name, b.name, err)
				break
			}
			if string(got) == string(want) {
				return nil
			}
		}
	}
	return err
}

// meshDelivers sends a packet between every ordered pair.
func meshDelivers(t *testing.T, ms []*member, seq uint32) {
	t.Helper()
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				if err := send(a, b, seq); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// pathsOn: every member's packet stream to every other runs over an
// address containing want.
func pathsOn(ms []*member, want string) func() error {
	return func() error {
		for _, a := range ms {
			for _, p := range a.m.Peers() {
				if p.Self {
					continue
				}
				if p.Link == nil || !p.Link.StreamUp {
					return fmt.Errorf("%s -> %s: no packet stream", a.name, p.HostName)
				}
				if !strings.Contains(p.Link.Path.Remote, want) {
					return fmt.Errorf("%s -> %s over %s, want %s", a.name, p.HostName, p.Link.Path.Remote, want)
				}
			}
		}
		return nil
	}
}

func TestMembersInProcess(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	ms := []*member{l.member("a"), l.member("b"), l.member("c")}
	for _, mb := range ms {
		mb.start()
	}
	eventually(t, 30*time.Second, "members converge", converged(ms))

	seen := map[netip.Addr]string{}
	for _, mb := range ms {
		if other, dup := seen[mb.ip()]; dup {
			t.Fatalf("%s and %s share %s", mb.name, other, mb.ip())
		}
		seen[mb.ip()] = mb.name
		if got, want := mb.dev.Addr(), netip.PrefixFrom(mb.ip(), 24); got != want {
			t.Errorf("%s: device address %s, want %s", mb.name, got, want)
		}
	}
	meshDelivers(t, ms, 1)
	eventually(t, 10*time.Second, "basic rule: public path", pathsOn(ms, "/ip4/127.0.0.1/"))

	t.Run("api", func(t *testing.T) {
		a := ms[0]
		st, err := a.client().Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.IP != a.ip().String() || st.Members != 3 || st.Device != "cbnet0" {
			t.Errorf("status = %+v", st)
		}
		nr, err := a.client().NetworkingRule(t.Context(), st.PeerID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range nr.Rules {
			if r.PeerScope != "inter" || r.SelectedIP != "127.0.0.1" {
				t.Errorf("networking rule row %+v: want inter over 127.0.0.1", r)
			}
		}
	})

	t.Run("metrics parse", func(t *testing.T) {
		resp, err := http.Get("http://" + ms[0].m.APIAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("scrape does not parse: %v", err)
		}
		for _, name := range []string{"cbnode_build_info", "cbnode_members", "cbnode_peer_path", "cbnode_tx_packets_total",
			"cbnode_certificate_expiry_timestamp_seconds", "cbnode_ipam_state", "go_goroutines", "process_cpu_seconds_total"} {
			if fams[name] == nil {
				t.Errorf("no %s in the scrape", name)
			}
		}
		if m := fams["cbnode_members"]; m != nil && m.Metric[0].GetGauge().GetValue() != 3 {
			t.Errorf("cbnode_members = %v", m.Metric[0].GetGauge().GetValue())
		}
		libp2p := false
		for name := range fams {
			libp2p = libp2p || strings.HasPrefix(name, "libp2p_")
		}
		if !libp2p {
			t.Error("no libp2p_* metrics in the scrape")
		}
	})

	t.Run("rules push moves paths", func(t *testing.T) {
		r := cost.DefaultRules(l.owner.Spec.ID, cost.RuleCostPrioritized)
		r.Version, r.IssuedAt = 2, time.Now()
		if err := cost.SignRules(l.owner.Key, r); err != nil {
			t.Fatal(err)
		}
		doc, _ := r.Marshal()
		if _, err := ms[1].client().PushRules(t.Context(), doc); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "cost-prioritized: private path", pathsOn(ms, "/ip6/::1/"))
		meshDelivers(t, ms, 2)
		st, _ := ms[0].client().Status(t.Context())
		nr, err := ms[0].client().NetworkingRule(t.Context(), st.PeerID)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range nr.Rules {
			if row.PeerScope != "intra" || row.Class != string(cost.ClassSameSubnet) || row.PricePerGB != 0 {
				t.Errorf("networking rule row %+v: want intra same-subnet at $0/GB", row)
			}
		}
	})

	t.Run("leave and restart", func(t *testing.T) {
		c := ms[2]
		ip := c.ip()
		c.m.Stop()
		if !c.dev.Closed() {
			t.Error("Stop left the device open")
		}
		eventually(t, 3*time.Second, "the others see c leave", func() error {
			for _, o := range ms[:2] {
				if n := len(o.m.Peers()); n != 2 {
					return fmt.Errorf("%s still sees %d members", o.name, n)
				}
			}
			return nil
		})
		c.start()
		eventually(t, 30*time.Second, "c is back", converged(ms))
		if c.ip() != ip {
			t.Errorf("restarted c got %s, had %s", c.ip(), ip)
		}
		meshDelivers(t, ms, 3)
	})
}

// TestMemberRelays: a member started with Relay (join --relay) relays for
// its fellow members: they reserve a slot on it and advertise the circuit.
func TestMemberRelays(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	a, r := l.member("a"), l.member("r")
	r.relay = true
	a.start()
	r.start()
	rid, _ := peer.IDFromPrivateKey(r.key)
	eventually(t, 30*time.Second, "a advertises a circuit through r", func() error {
		st := a.m.Status()
		for _, addr := range st.Addrs {
			if strings.Contains(addr, "/p2p/"+rid.String()+"/p2p-circuit") {
				return nil
			}
		}
		return fmt.Errorf("a's addresses: %v", st.Addrs)
	})
}

// TestPartialDetailsKeepAddresses: cb-network's clients PUT five location
// fields; the addresses given at join stay, an explicit empty value clears.
func TestPartialDetailsKeepAddresses(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	a := l.member("a")
	a.start()
	st, err := a.client().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"cloudInformation":{"providerName":"gcp","regionId":"asia-northeast3","availabilityZoneId":"asia-northeast3-a","virtualNetworkId":"vpc-9","subnetId":"sub-9"}}`
	req, _ := http.NewRequest(http.MethodPut, "http://"+a.m.APIAddr()+"/v1/cladnet/"+st.CladnetID+"/peer/"+st.PeerID+"/details", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT details: %s", resp.Status)
	}
	self, err := a.client().Peer(t.Context(), st.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	d := self.Details
	if d.ProviderName != "gcp" || d.VirtualNetworkID != "vpc-9" || d.PublicIP != "127.0.0.1" || len(d.PrivateIPs) != 1 || d.PrivateIPs[0] != "::1" {
		t.Fatalf("details after a partial PUT: %+v", d)
	}
	empty := ""
	if _, err := a.client().SetDetails(t.Context(), st.PeerID, cost.CloudPatch{PublicIP: &empty}); err != nil {
		t.Fatal(err)
	}
	if self, _ := a.client().Peer(t.Context(), st.PeerID); self.Details.PublicIP != "" || self.Details.ProviderName != "gcp" {
		t.Fatalf("details after clearing the public IP: %+v", self.Details)
	}

	// Run-time details survive a restart with the same join flags...
	a.m.Stop()
	a.start()
	if d := a.m.Membership().Cloud(); d.ProviderName != "gcp" || d.PublicIP != "" || d.SubnetID != "sub-9" {
		t.Fatalf("details after a restart: %+v", d)
	}
	// ...and give way to join flags that changed since.
	changed := cloudFacts
	changed.RegionID = "us-west-2"
	a.cloud = &changed
	a.m.Stop()
	a.start()
	if d := a.m.Membership().Cloud(); d.ProviderName != "aws" || d.RegionID != "us-west-2" || d.PublicIP != "127.0.0.1" {
		t.Fatalf("details after a restart with new flags: %+v", d)
	}
}

// TestMemberNames: every member's hosts-file block and DNS server hold the
// members' names at their overlay addresses; a member that leaves drops out
// of both, and takes its own block with it.
func TestMemberNames(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	ms := []*member{l.member("a"), l.member("b"), l.member("c")}
	for _, mb := range ms {
		mb.dns = names.Options{Mode: names.ModeHosts, HostsFile: filepath.Join(t.TempDir(), "hosts"), Addr: netip.MustParseAddr("127.0.0.1")}
		if err := os.WriteFile(mb.dns.HostsFile, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mb.start()
	}
	eventually(t, 30*time.Second, "members converge", converged(ms))
	hostsLine := func(mb *member) string {
		return fmt.Sprintf("%s\t%s.lab.cbnode %s.cbnode %s\n", mb.ip(), mb.name, mb.name, mb.name)
	}
	a, c := ms[0], ms[2]
	for _, mb := range ms {
		eventually(t, 10*time.Second, mb.name+"'s hosts file", func() error {
			b, err := os.ReadFile(mb.dns.HostsFile)
			if err != nil {
				return err
			}
			for _, other := range ms {
				if !strings.Contains(string(b), hostsLine(other)) {
					return fmt.Errorf("no line %q in\n%s", hostsLine(other), b)
				}
			}
			return nil
		})
	}
	srv, ok := a.m.Names().ServerAddr()
	if !ok {
		t.Fatal("a serves no DNS")
	}
	lookup := func(name string) ([]string, int, error) {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, srv.String())
		if err != nil {
			return nil, 0, err
		}
		var ips []string
		for _, rr := range r.Answer {
			ips = append(ips, rr.(*dns.A).A.String())
		}
		return ips, r.Rcode, nil
	}
	if ips, _, err := lookup("c.lab.cbnode."); err != nil || len(ips) != 1 || ips[0] != c.ip().String() {
		t.Fatalf("a's DNS: c.lab.cbnode. → %v %v, want %s", ips, err, c.ip())
	}
	c.m.Stop()
	eventually(t, 10*time.Second, "c gone from a's names", func() error {
		b, _ := os.ReadFile(a.dns.HostsFile)
		if strings.Contains(string(b), "c.lab.cbnode") {
			return fmt.Errorf("a's hosts file still has c:\n%s", b)
		}
		if _, rc, err := lookup("c.lab.cbnode."); err != nil || rc != dns.RcodeNameError {
			return fmt.Errorf("a's DNS: c.lab.cbnode. rcode %d, %v; want NXDOMAIN", rc, err)
		}
		return nil
	})
	if b, _ := os.ReadFile(c.dns.HostsFile); string(b) != "127.0.0.1 localhost\n" {
		t.Errorf("c's hosts file after its Stop:\n%s", b)
	}
}

// TestStopWaitsForEverything: after Stop of every member and the bootstrap
// node no goroutine of theirs is left.
func TestStopWaitsForEverything(t *testing.T) {
	run := func() {
		l := newLab(t, cost.RuleBasic)
		ms := []*member{l.member("a"), l.member("b")}
		for _, mb := range ms {
			mb.dns = names.Options{Mode: names.ModeHosts, HostsFile: filepath.Join(t.TempDir(), "hosts"), Addr: netip.MustParseAddr("127.0.0.1")}
			mb.start()
		}
		eventually(t, 30*time.Second, "members converge", converged(ms))
		meshDelivers(t, ms, 1)
		if _, err := ms[0].client().Ping(t.Context(), "b"); err != nil {
			t.Fatal(err)
		}
		for _, mb := range ms {
			mb.m.Stop()
			mb.m.Stop() // idempotent
		}
		l.boot.Stop()
	}
	// A first run starts what the process keeps once (libp2p's and net/http's
	// package-level workers); the second must leave nothing behind.
	run()
	http.DefaultClient.CloseIdleConnections()
	baseline := settle()
	run()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d after Stop, %d before\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits until the goroutine count stops falling and returns it.
func settle() int {
	n := runtime.NumGoroutine()
	for range 40 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return n
		}
		n = m
	}
	return n
}
