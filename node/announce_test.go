package node

import (
	"context"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
)

func TestParseAnnounce(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.7", "/ip4/203.0.113.7"},
		{" 203.0.113.7 ", "/ip4/203.0.113.7"},
		{"2001:db8::7", "/ip6/2001:db8::7"},
		{"::ffff:203.0.113.7", "/ip4/203.0.113.7"},
		{"Boot.Example.com.", "/dns4/boot.example.com"},
		{"boot-1.example.com", "/dns4/boot-1.example.com"},
		{"localhost", "/dns4/localhost"},
		{"/dns6/boot.example.com", "/dns6/boot.example.com"},
		{"/ip4/203.0.113.7/tcp/7460", "/ip4/203.0.113.7/tcp/7460"},
		{"/dns4/boot.example.com/udp/443/quic-v1", "/dns4/boot.example.com/udp/443/quic-v1"},
	} {
		a, err := ParseAnnounce(tc.in)
		if err != nil {
			t.Errorf("ParseAnnounce(%q): %v", tc.in, err)
			continue
		}
		if a.String() != tc.want {
			t.Errorf("ParseAnnounce(%q) = %s, want %s", tc.in, a, tc.want)
		}
	}
	for _, in := range []string{
		"", "0.0.0.0", "::", "224.0.0.1", "203.0.113.7:7460", "[2001:db8::7]:7460", "1.2.3", "300.1.1.1",
		"bad_name", "-boot.example.com", "boot..example.com", "http://boot.example.com", "fe80::1%eth0",
		strings.Repeat("a", 64) + ".com",
		"/ip4/203.0.113.7/tcp/0", "/ip4/203.0.113.7/udp/7460", "/ip4/203.0.113.7/tcp/7460/p2p/12D3KooWCXRj666AtjwTDBZK4AYDSYrHWVfyi5UERWsxu14VWzdL",
		"/tcp/7460", "/ip4/203.0.113.7/tcp/7460/ws", "/unix/tmp/x", "/ip4/nonsense",
	} {
		if a, err := ParseAnnounce(in); err == nil {
			t.Errorf("ParseAnnounce(%q) = %s, want an error", in, a)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseAnnounce(%q): error of several lines: %q", in, err)
		}
	}
}

func mas(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func strs(as []ma.Multiaddr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func TestAnnouncedTakesListenPorts(t *testing.T) {
	detected := mas(t, "/ip4/10.0.0.5/tcp/7460", "/ip4/127.0.0.1/tcp/7460", "/ip4/10.0.0.5/udp/7461/quic-v1",
		"/ip6/::1/tcp/7462", "/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWCXRj666AtjwTDBZK4AYDSYrHWVfyi5UERWsxu14VWzdL/p2p-circuit")
	got := strings.Join(strs(announced(mas(t, "/ip4/203.0.113.7", "/dns4/boot.example.com", "/ip6/2001:db8::7", "/dns/b.example.com/tcp/443"), detected)), " ")
	want := "/ip4/203.0.113.7/tcp/7460 /ip4/203.0.113.7/udp/7461/quic-v1 /dns4/boot.example.com/tcp/7460 /dns4/boot.example.com/udp/7461/quic-v1 /ip6/2001:db8::7/tcp/7462 /dns/b.example.com/tcp/443"
	if got != want {
		t.Errorf("announced:\n got %s\nwant %s", got, want)
	}
}

func TestBestAddr(t *testing.T) {
	const id = "/p2p/12D3KooWCXRj666AtjwTDBZK4AYDSYrHWVfyi5UERWsxu14VWzdL"
	for _, tc := range []struct {
		name  string
		addrs []string
		ann   []string
		want  string
	}{
		{"announced first, TCP before QUIC", []string{"/ip4/198.51.100.9/tcp/7460", "/ip4/203.0.113.7/udp/7460/quic-v1", "/ip4/203.0.113.7/tcp/7460"}, []string{"/ip4/203.0.113.7"}, "/ip4/203.0.113.7/tcp/7460"},
		{"announced DNS name", []string{"/ip4/10.0.0.5/tcp/7460", "/dns4/boot.example.com/tcp/7460"}, []string{"/dns4/boot.example.com"}, "/dns4/boot.example.com/tcp/7460"},
		{"public before private", []string{"/ip4/127.0.0.1/tcp/7460", "/ip4/10.0.0.5/tcp/7460", "/ip4/198.51.100.9/udp/7460/quic-v1"}, nil, "/ip4/198.51.100.9/udp/7460/quic-v1"},
		{"private before loopback", []string{"/ip4/127.0.0.1/tcp/7460", "/ip6/::1/tcp/7460", "/ip6/fe80::1/tcp/7460", "/ip4/100.64.1.2/tcp/7460", "/ip4/10.0.0.5/tcp/7460"}, nil, "/ip4/100.64.1.2/tcp/7460"},
		{"link-local before loopback", []string{"/ip4/127.0.0.1/tcp/7460", "/ip6/fe80::1/tcp/7460"}, nil, "/ip6/fe80::1/tcp/7460"},
		{"loopback if nothing else", []string{"/ip4/127.0.0.1/udp/7460/quic-v1", "/ip4/127.0.0.1/tcp/7460"}, nil, "/ip4/127.0.0.1/tcp/7460"},
		{"never a circuit", []string{"/ip4/198.51.100.1/tcp/4001" + id + "/p2p-circuit", "/ip4/127.0.0.1/tcp/7460"}, nil, "/ip4/127.0.0.1/tcp/7460"},
		{"none", nil, nil, ""},
	} {
		got := BestAddr(mas(t, tc.addrs...), mas(t, tc.ann...))
		if s := ""; got != nil {
			s = got.String()
			if s != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s: nil, want %s", tc.name, tc.want)
		}
	}
}

// TestNodeAdvertisesAnnounced: a node on 127.0.0.1 (port 0) advertises the
// announced IP and name with its real listen ports, and gives the announced
// IP as its bootstrap address.
func TestNodeAdvertisesAnnounced(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := New(context.Background(), Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Public: true,
		Announce: mas(t, "/ip4/203.0.113.7", "/dns4/boot.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var tcpPort string
	for _, a := range n.Host.Network().ListenAddresses() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			tcpPort = p
		}
	}
	have := strings.Join(strs(n.Host.Addrs()), " ")
	for _, w := range []string{"/ip4/203.0.113.7/tcp/" + tcpPort, "/ip4/203.0.113.7/udp/", "/dns4/boot.example.com/tcp/" + tcpPort, "/ip4/127.0.0.1/tcp/" + tcpPort} {
		if !strings.Contains(have, w) {
			t.Errorf("advertised addresses %s lack %s", have, w)
		}
	}
	want := "/ip4/203.0.113.7/tcp/" + tcpPort + "/p2p/" + n.Host.ID().String()
	if got := n.BootstrapAddr(); got == nil || got.String() != want {
		t.Errorf("BootstrapAddr = %v, want %s", got, want)
	}
}
