package names

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/overlay"
)

var (
	testNow  = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	testSpec = &cladnet.Spec{ID: "cnlab", Name: "Lab", CIDR: "10.77.0.0/24"}
)

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// member is a live row of the members table: host at ip, certificate valid
// for an hour around testNow.
func member(id peer.ID, host, ip string) overlay.Member {
	return overlay.Member{ID: id, Ann: &overlay.Announcement{
		Kind: overlay.KindAnnounce, PeerID: id.String(), HostName: host, OverlayIP: ip, State: overlay.StateTunneling,
		Cert: &cladnet.Certificate{CladnetID: testSpec.ID, PeerID: id.String(), HostName: host,
			NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)},
	}}
}

func with(m overlay.Member, f func(a *overlay.Announcement)) overlay.Member {
	a := *m.Ann
	c := *a.Cert
	a.Cert = &c
	f(&a)
	m.Ann = &a
	return m
}

func TestBuild(t *testing.T) {
	p1, p2, p3 := newPeer(t), newPeer(t), newPeer(t)
	other := newPeer(t)
	vm1 := member(p1, "vm1", "10.77.0.11")
	vm2 := member(p2, "vm2", "10.77.0.12")
	cases := []struct {
		name    string
		members []overlay.Member
		want    map[string]string // host → IP
		clash   []string          // "host: reason"
	}{
		{"live members", []overlay.Member{vm1, vm2}, map[string]string{"vm1": "10.77.0.11", "vm2": "10.77.0.12"}, nil},
		{"self too", []overlay.Member{func() overlay.Member { m := vm1; m.Self = true; return m }()}, map[string]string{"vm1": "10.77.0.11"}, nil},
		{"lost member drops out", []overlay.Member{vm1}, map[string]string{"vm1": "10.77.0.11"}, nil},
		{"host names are lower-cased", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.HostName, a.Cert.HostName = "VM2", "VM2" })},
			map[string]string{"vm2": "10.77.0.12"}, nil},
		{"no address yet", []overlay.Member{vm1, with(vm2, func(a *overlay.Announcement) { a.OverlayIP = ""; a.State = overlay.StateConfiguring })},
			map[string]string{"vm1": "10.77.0.11"}, nil},
		{"address outside the range", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.OverlayIP = "10.78.0.12" })}, map[string]string{}, nil},
		{"garbled address", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.OverlayIP = "ten" })}, map[string]string{}, nil},
		{"expired certificate", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.Cert.NotAfter = testNow })}, map[string]string{}, nil},
		{"certificate not yet valid", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.Cert.NotBefore = testNow.Add(time.Second) })}, map[string]string{}, nil},
		{"certificate of another CLADNet", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.Cert.CladnetID = "cnother" })}, map[string]string{}, nil},
		{"certificate of another peer", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.Cert.PeerID = other.String() })}, map[string]string{}, nil},
		{"no certificate", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.Cert = nil })}, map[string]string{}, nil},
		{"announced name differs from the signed one", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.HostName = "evil" })}, map[string]string{}, nil},
		{"leaving", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.State = overlay.StateClosing })}, map[string]string{}, nil},
		{"released", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.State = overlay.StateReleased })}, map[string]string{}, nil},
		{"failed", []overlay.Member{with(vm2, func(a *overlay.Announcement) { a.State = overlay.StateFailed })}, map[string]string{}, nil},
		{"one host name, two members", []overlay.Member{vm1, vm2, member(p3, "VM2", "10.77.0.13")},
			map[string]string{"vm1": "10.77.0.11"}, []string{"vm2: host name"}},
		{"one address, two names", []overlay.Member{vm1, vm2, member(p3, "vm3", "10.77.0.12")},
			map[string]string{"vm1": "10.77.0.11"}, []string{"vm2: overlay IP 10.77.0.12", "vm3: overlay IP 10.77.0.12"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := Build(testSpec, tc.members, testNow)
			got := map[string]string{}
			for _, e := range tab.Entries(testNow) {
				got[e.Host] = e.IP.String()
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("entries %v, want %v", got, tc.want)
			}
			for host, ip := range tc.want {
				if a, ok := tab.Lookup(host, testNow); !ok || a.String() != ip {
					t.Errorf("Lookup(%s) = %v %v, want %s", host, a, ok, ip)
				}
			}
			var clash []string
			for _, c := range tab.Conflicts() {
				clash = append(clash, c.Host+": "+c.Reason)
				if len(c.Peers) != 2 {
					t.Errorf("conflict %s names %d peers, want 2", c.Host, len(c.Peers))
				}
			}
			if fmt.Sprint(clash) != fmt.Sprint(tc.clash) {
				t.Errorf("conflicts %v, want %v", clash, tc.clash)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tab := Build(testSpec, []overlay.Member{member(newPeer(t), "vm2", "10.77.0.12")}, testNow)
	for _, host := range []string{"vm2", "VM2", "Vm2"} {
		if ip, ok := tab.Lookup(host, testNow); !ok || ip != netip.MustParseAddr("10.77.0.12") {
			t.Errorf("Lookup(%q) = %v %v", host, ip, ok)
		}
	}
	for _, host := range []string{"vm3", "", "vm2.lab.cbnode"} {
		if _, ok := tab.Lookup(host, testNow); ok {
			t.Errorf("Lookup(%q) resolves", host)
		}
	}
	// The certificate ends while the table stands: the name ends with it.
	if _, ok := tab.Lookup("vm2", testNow.Add(time.Hour)); ok {
		t.Error("vm2 resolves after its certificate's end")
	}
	if n := len(tab.Entries(testNow.Add(time.Hour))); n != 0 {
		t.Errorf("%d entries after the certificate's end", n)
	}
	var none *Table
	if _, ok := none.Lookup("vm2", testNow); ok {
		t.Error("nil table resolves")
	}
}

func TestZone(t *testing.T) {
	for name, want := range map[string]string{"lab": "lab.cbnode", "Lab": "lab.cbnode", "my-net.eu": "my-net.eu.cbnode", "a..b": "", "a.": ""} {
		spec := *testSpec
		spec.Name = name
		if got := Build(&spec, nil, testNow).Zone(); got != want {
			t.Errorf("CLADNet %q: zone %q, want %q", name, got, want)
		}
	}
}
