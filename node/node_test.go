package node

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestKeyPersistsWithMode0600(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("a second load made a new key: the peer ID would change across restarts")
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v, want Ed25519", k1.Type())
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("a corrupt key file was accepted (or silently replaced)")
	}
}

func TestNeverAdvertisesOrDialsOverlayAddresses(t *testing.T) {
	blocked := netip.MustParsePrefix("127.0.0.0/24") // stand-in for a CLADNet range
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := New(context.Background(), Config{Key: k, ListenIPs: []string{"127.0.0.1", "127.0.1.1"}, Blocked: []netip.Prefix{blocked}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, a := range n.Host.Addrs() {
		if strings.Contains(a.String(), "/127.0.0.1/") {
			t.Errorf("advertises %s inside the blocked range %s", a, blocked)
		}
	}
	if len(n.Host.Addrs()) == 0 {
		t.Fatal("no addresses left at all: the filter dropped too much")
	}
	// A peer reachable only inside the range is not dialled.
	k2, _, _ := crypto.GenerateEd25519Key(nil)
	other, err := New(context.Background(), Config{Key: k2, ListenIPs: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = n.Host.Connect(context.Background(), peer.AddrInfo{ID: other.Host.ID(), Addrs: other.Host.Addrs()})
	if err == nil {
		t.Fatal("dialled a peer at an address inside the blocked range")
	}
	// And the same peer at an address outside it is fine.
	k3, _, _ := crypto.GenerateEd25519Key(nil)
	outside, err := New(context.Background(), Config{Key: k3, ListenIPs: []string{"127.0.1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if err := n.Host.Connect(context.Background(), peer.AddrInfo{ID: outside.Host.ID(), Addrs: outside.Host.Addrs()}); err != nil {
		t.Fatalf("dial outside the blocked range: %v", err)
	}
}

func TestParseBootstrap(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	infos, err := ParseBootstrap([]string{
		"/ip4/127.0.0.1/tcp/7460/p2p/" + id.String(),
		"/ip4/127.0.0.1/udp/7460/quic-v1/p2p/" + id.String(),
		"",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || len(infos[0].Addrs) != 2 {
		t.Fatalf("got %v, want one peer with two addresses", infos)
	}
	for _, bad := range []string{"/ip4/127.0.0.1/tcp/7460", "not-a-multiaddr", "/ip4/1.2.3.4/tcp/1/p2p/xyz"} {
		if _, err := ParseBootstrap([]string{bad}); err == nil {
			t.Errorf("ParseBootstrap(%q) accepted", bad)
		}
	}
}

// TestNodeKnowsNoCLADNet: the libp2p host package stays below the CLADNet
// concepts (certificates, relays for members): it must not import them.
func TestNodeKnowsNoCLADNet(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/cbnode/cladnet", "/cbnode/relay", "/cbnode/overlay", "/cbnode/ipam", "/cbnode/daemon"} {
			if strings.HasSuffix(dep, banned) || strings.Contains(dep, banned+"/") {
				t.Errorf("node depends on %s", dep)
			}
		}
	}
}

func TestCircuitsThroughLiveRelaysFirst(t *testing.T) {
	live, dead := "12D3KooWHxt73NXov9aq3SV28Dsp4nrDgYB8UAgPcDs2qjBkn2U2", "12D3KooWBv9nRypzJepMD9VJtUbo4CdQxdBKNBgvRSNJdB6nKbL1"
	liveID, _ := peer.Decode(live)
	connected := func(p peer.ID) bool { return p == liveID }
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/198.51.100.9/tcp/7460"),
		ma.StringCast("/ip4/7.7.7.1/udp/7460/quic-v1/p2p/" + dead + "/p2p-circuit"),
		ma.StringCast("/ip4/7.7.7.11/tcp/7460/p2p/" + live + "/p2p-circuit"),
	}
	var got []string
	for _, r := range rankFor(connected)(addrs) {
		got = append(got, r.Addr.String())
	}
	if len(got) != 2 || strings.Contains(strings.Join(got, " "), dead) {
		t.Fatalf("ranked %v: want the direct address and the circuit through the connected relay only", got)
	}
	// No circuit through a connected relay: all are kept.
	if n := len(rankFor(func(peer.ID) bool { return false })(addrs)); n != 3 {
		t.Fatalf("no relay connected: %d addresses ranked, want all 3", n)
	}
}
