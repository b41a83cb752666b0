package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

const relayID = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"

func TestLinkAndPath(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		st         *forward.PeerStats
		link, path string
	}{
		{"no data plane", nil, "-", "-"},
		{"no stream yet: not direct", &forward.PeerStats{}, "idle", "-"},
		{"active direct tcp", &forward.PeerStats{StreamUp: true, LastRecv: now.Add(-2 * time.Second),
			Path: forward.PathInfo{Remote: "/ip4/7.7.7.12/tcp/7460", Transport: "tcp"}}, "active", "direct 7.7.7.12:7460"},
		{"idle direct quic", &forward.PeerStats{StreamUp: true, LastRecv: now.Add(-time.Minute),
			Path: forward.PathInfo{Remote: "/ip4/7.7.7.12/udp/7460/quic-v1", Transport: "quic"}}, "idle", "direct 7.7.7.12:7460 quic"},
		{"dead stays dead, not direct-looking-fine", &forward.PeerStats{StreamUp: true, PathDead: true, LastRecv: now.Add(-time.Second),
			Path: forward.PathInfo{Remote: "/ip6/2001:db8::1/tcp/7460", Transport: "tcp"}}, "dead", "direct [2001:db8::1]:7460"},
		{"relayed", &forward.PeerStats{StreamUp: true, LastRecv: now,
			Path: forward.PathInfo{Relayed: true, Remote: "/ip4/203.0.113.7/tcp/7460/p2p/" + relayID + "/p2p-circuit"}}, "active", "relay …kSCVe2Xo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := linkState(tc.st, now); got != tc.link {
				t.Errorf("link = %q, want %q", got, tc.link)
			}
			if got := pathStr(tc.st, false); got != tc.path {
				t.Errorf("path = %q, want %q", got, tc.path)
			}
		})
	}
	long := pathStr(&forward.PeerStats{StreamUp: true, Path: forward.PathInfo{Relayed: true, Remote: "/ip4/203.0.113.7/tcp/7460/p2p/" + relayID + "/p2p-circuit"}}, true)
	if long != "relay "+relayID {
		t.Errorf("long relay path = %q", long)
	}
}

func TestShortID(t *testing.T) {
	for in, want := range map[string]string{relayID: "…kSCVe2Xo", "short": "short", "": ""} {
		if got := shortID(in); got != want {
			t.Errorf("shortID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDialAddrs(t *testing.T) {
	in := []string{
		"/ip4/127.0.0.1/tcp/7460/p2p/" + relayID,
		"/ip4/10.0.1.5/tcp/7460/p2p/" + relayID,
		"/ip4/203.0.113.7/tcp/7460/p2p/" + relayID + "/p2p-circuit/p2p/" + relayID,
		"/ip6/::1/udp/7460/quic-v1/p2p/" + relayID,
		"/ip4/7.7.7.20/udp/7460/quic-v1/p2p/" + relayID,
		"/ip4/7.7.7.20/tcp/7460/p2p/" + relayID,
	}
	want := []string{in[4], in[5], in[1]}
	got := dialAddrs(in)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dialAddrs =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHealthLines(t *testing.T) {
	h := &api.Health{Verdict: api.HealthOffline, Reason: "no member connected and bootstrap x unreachable", IPAM: "acquiring",
		Health: node.Health{
			Bootstrap: []node.BootstrapHealth{
				{ID: relayID, Addrs: []string{"/ip4/10.250.0.99/tcp/7460"}, Failures: 4, LastError: "dial backoff"},
				{ID: "other", Addrs: []string{"/ip4/10.250.0.1/tcp/7460"}, Connected: true},
			},
			Reachability: "private", NATTCP: "unknown", NATUDP: "endpoint-independent",
			Observed: []node.ObservedAddr{{Addr: "/ip4/198.51.100.4/tcp/40000", Observers: 2}},
		}}
	var b strings.Builder
	for _, l := range healthLines(h, false) {
		b.WriteString(l[0] + "|" + l[1] + "\n")
	}
	got := b.String()
	for _, want := range []string{
		"Health|offline: no member connected and bootstrap x unreachable\n",
		"Bootstrap|…kSCVe2Xo /ip4/10.250.0.99/tcp/7460 unreachable (4 failed tries: dial backoff)\n",
		"|other /ip4/10.250.0.1/tcp/7460 connected\n",
		"Relays|reservations on none\n",
		"NAT|reachability private (AutoNAT), type tcp unknown, udp endpoint-independent\n",
		"Seen as|/ip4/198.51.100.4/tcp/40000 (by 2 peers)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if healthLines(nil, false) != nil {
		t.Error("lines for no health")
	}
}

func TestPrintPeers(t *testing.T) {
	now := time.Now()
	peers := []api.Peer{
		{HostName: "a", HostID: relayID, IP: "10.77.0.1", State: "tunneling", Self: true},
		{HostName: "b", HostID: relayID, IP: "10.77.0.2", State: "tunneling", RTTms: 1.234, LastSeen: now,
			Link: &forward.PeerStats{StreamUp: true, LastRecv: now, TxPackets: 3, TxBytes: 300,
				Path: forward.PathInfo{Remote: "/ip4/7.7.7.12/tcp/7460", Transport: "tcp"}}},
		{HostName: "c", HostID: relayID, IP: "10.77.0.3", State: "tunneling", Link: &forward.PeerStats{}},
	}
	var out bytes.Buffer
	if err := printPeers(&out, peers, false, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", out.String())
	}
	for i, want := range [][]string{
		{"HOST", "LINK", "PATH", "RTT", "LAST RX", "PEER"},
		{"a (self)", "…kSCVe2Xo"},
		{"b", "active", "direct 7.7.7.12:7460", "1.23ms", "just now", "3p/300B"},
		{"c", "idle", "never"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(lines[3], "direct") || strings.Contains(out.String(), relayID) {
		t.Errorf("table:\n%s", out.String())
	}
	out.Reset()
	if err := printPeers(&out, peers, true, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), relayID) || !strings.Contains(out.String(), "LAST SEEN") {
		t.Errorf("--long table:\n%s", out.String())
	}
}

func TestNetcheckReport(t *testing.T) {
	nc := api.Netcheck{Took: "1.2s", Reachability: "private", NATTCP: "unknown", NATUDP: "unknown",
		Targets: []api.NetcheckTarget{
			{ID: relayID, Roles: []string{"bootstrap", "relay"}, OK: true, RTTms: 12.3, Remote: "/ip4/203.0.113.7/tcp/7460", Reserved: true},
			{ID: "dead", Roles: []string{"bootstrap"}, Addrs: []string{"/ip4/10.250.0.99/tcp/7460"}, Error: "dial tcp: i/o timeout"},
		},
		HolePunch: api.HolePunchReadiness{DCUtR: true, Relayed: true, Direct: "unknown", Analysis: "NAT type not known yet"}}
	got := netcheckReport(nc, false)
	for _, want := range []string{
		"* bootstrap+relay …kSCVe2Xo: ok, 12ms via /ip4/203.0.113.7/tcp/7460, relay reservation held\n",
		"* bootstrap dead at /ip4/10.250.0.99/tcp/7460: FAILED: dial tcp: i/o timeout\n",
		"* reachability (AutoNAT): private\n",
		"* seen by peers as: (no observation yet)\n",
		"* public addresses: (none)\n",
		"* direct connections: unknown: NAT type not known yet (DCUtR on, relay reservation yes)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}
