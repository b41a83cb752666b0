package ipam

import (
	"crypto/sha256"
	"encoding/binary"
	"iter"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
)

// hostRange is the usable host addresses of an IPv4 prefix: network+1 up to
// broadcast-1, indexed 0..n-1.
type hostRange struct {
	first uint32 // network address + 1
	n     uint32
}

func newHostRange(p netip.Prefix) hostRange {
	n := UsableHosts(p)
	if n <= 0 {
		return hostRange{}
	}
	a := p.Masked().Addr().As4()
	return hostRange{first: binary.BigEndian.Uint32(a[:]) + 1, n: uint32(n)}
}

// at returns host number i (i < n).
func (r hostRange) at(i uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], r.first+i)
	return netip.AddrFrom4(b)
}

// index returns the host number of ip, and false for addresses that are not
// usable hosts of the range (outside it, network or broadcast address).
func (r hostRange) index(ip netip.Addr) (uint32, bool) {
	if !ip.Is4() || r.n == 0 {
		return 0, false
	}
	b := ip.As4()
	v := binary.BigEndian.Uint32(b[:])
	if v < r.first || v-r.first >= r.n {
		return 0, false
	}
	return v - r.first, true
}

// isUsableHost reports whether ip is a host address of p, neither its
// network nor its broadcast address.
func isUsableHost(p netip.Prefix, ip netip.Addr) bool {
	_, ok := newHostRange(p).index(ip)
	return ok
}

// hashIndex maps a peer ID deterministically into the range, so that each
// node tends to start its search at its own spot.
func (r hostRange) hashIndex(p peer.ID) uint32 {
	if r.n == 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(p))
	return uint32(binary.BigEndian.Uint64(sum[:8]) % uint64(r.n))
}

// candidates yields the addresses to try, in order: preferred (if usable),
// then from host number start onward, wrapping around, each address once.
func (r hostRange) candidates(preferred netip.Addr, start uint32) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		pi, havePref := r.index(preferred)
		if havePref && !yield(preferred) {
			return
		}
		for k := uint32(0); k < r.n; k++ {
			i := (start + k) % r.n
			if havePref && i == pi {
				continue
			}
			if !yield(r.at(i)) {
				return
			}
		}
	}
}
