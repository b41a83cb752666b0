package ipam

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestHostRangeCandidates(t *testing.T) {
	for _, tc := range []struct {
		cidr  string
		n     uint32
		first string
		last  string
	}{
		{"10.77.0.0/30", 2, "10.77.0.1", "10.77.0.2"},
		{"10.77.0.0/29", 6, "10.77.0.1", "10.77.0.6"},
		{"10.77.0.0/24", 254, "10.77.0.1", "10.77.0.254"},
		{"10.0.0.0/8", 1<<24 - 2, "10.0.0.1", "10.255.255.254"},
	} {
		p := netip.MustParsePrefix(tc.cidr)
		r := newHostRange(p)
		if r.n != tc.n || r.at(0).String() != tc.first || r.at(r.n-1).String() != tc.last {
			t.Errorf("%s: n %d, first %s, last %s", tc.cidr, r.n, r.at(0), r.at(r.n-1))
		}
		for _, bad := range []netip.Addr{p.Addr(), r.at(r.n - 1).Next(), p.Addr().Prev(), netip.MustParseAddr("::1"), {}} {
			if _, ok := r.index(bad); ok {
				t.Errorf("%s: %s counted as a usable host", tc.cidr, bad)
			}
		}
		if r.n > 1000 {
			continue
		}
		for _, pref := range []netip.Addr{{}, r.at(r.n / 2), p.Addr(), netip.MustParseAddr("192.168.0.1")} {
			for _, start := range []uint32{0, r.n - 1, r.n / 3} {
				seen := make(map[netip.Addr]bool)
				var order []netip.Addr
				for ip := range r.candidates(pref, start) {
					if seen[ip] {
						t.Fatalf("%s: %s yielded twice", tc.cidr, ip)
					}
					if _, ok := r.index(ip); !ok {
						t.Fatalf("%s: candidate %s is not a usable host", tc.cidr, ip)
					}
					seen[ip] = true
					order = append(order, ip)
				}
				if uint32(len(order)) != r.n {
					t.Fatalf("%s: %d candidates, want %d", tc.cidr, len(order), r.n)
				}
				want := r.at(start)
				if _, ok := r.index(pref); ok {
					want = pref
				}
				if order[0] != want {
					t.Errorf("%s pref %s start %d: first candidate %s, want %s", tc.cidr, pref, start, order[0], want)
				}
			}
		}
	}
}

func TestHashIndexSpreads(t *testing.T) {
	r := newHostRange(netip.MustParsePrefix("10.77.0.0/24"))
	hit := make(map[uint32]bool)
	for range 50 {
		k, _, _ := crypto.GenerateEd25519Key(nil)
		id, _ := peer.IDFromPrivateKey(k)
		i := r.hashIndex(id)
		if i >= r.n || i != r.hashIndex(id) {
			t.Fatalf("hash index %d out of range or unstable", i)
		}
		hit[i] = true
	}
	if len(hit) < 30 {
		t.Errorf("50 peers hashed to only %d slots", len(hit))
	}
}
