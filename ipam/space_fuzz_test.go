package ipam

import (
	"net/netip"
	"slices"
	"sort"
	"testing"
)

// FuzzRecommend decodes the input into a host count (first 4 bytes, mapped
// to 1..100000) and up to 16 used IPv4 prefixes (4 address bytes and 1
// length byte, mod 33, each), then checks Recommend against an independent
// oracle that works on candidate indices instead of free-space prefixes.
func FuzzRecommend(f *testing.F) {
	f.Add(encodeFuzz(3, "192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"))
	f.Add(encodeFuzz(3, "10.0.0.0/8", "172.16.0.0/12", "192.168.1.0/24"))
	f.Add(encodeFuzz(1, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
	f.Add(encodeFuzz(100000, "10.0.0.0/9", "10.128.0.0/10"))
	f.Add(encodeFuzz(1, "0.0.0.0/0"))
	f.Add(encodeFuzz(1000, "8.8.8.0/24", "10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/16", "10.0.1.0/24"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, used := decodeFuzz(data)
		got, err := Recommend(used, hosts)

		l, lerr := RequiredPrefixLen(hosts, DefaultHeadroom)
		if lerr != nil {
			t.Fatalf("RequiredPrefixLen(%d): %v", hosts, lerr)
		}
		want, wantOK := oracleLowest(used, l)

		if err != nil {
			if wantOK {
				t.Fatalf("Recommend(%v, %d) failed (%v), but %v is free", used, hosts, err, want)
			}
			// Cross-check via Free: no free prefix is big enough.
			for _, fs := range FreeSpaces(used) {
				for _, p := range fs.Free {
					if p.Bits() <= l {
						t.Fatalf("Recommend(%v, %d) failed (%v), but %v is free", used, hosts, err, p)
					}
				}
			}
			return
		}
		if !slices.ContainsFunc(PrivateBlocks, func(b netip.Prefix) bool {
			return b.Bits() <= got.Bits() && b.Contains(got.Addr())
		}) {
			t.Fatalf("Recommend(%v, %d) = %v, outside the private blocks", used, hosts, got)
		}
		if got != got.Masked() || got.Bits() != l {
			t.Fatalf("Recommend(%v, %d) = %v, want a canonical /%d", used, hosts, got, l)
		}
		for _, u := range used {
			if got.Overlaps(u) {
				t.Fatalf("Recommend(%v, %d) = %v overlaps %v", used, hosts, got, u)
			}
		}
		if UsableHosts(got) < hosts*2 {
			t.Fatalf("Recommend(%v, %d) = %v holds only %d hosts", used, hosts, got, UsableHosts(got))
		}
		if !wantOK || got != want {
			t.Fatalf("Recommend(%v, %d) = %v, oracle gives %v, %v", used, hosts, got, want, wantOK)
		}
	})
}

// decodeFuzz turns fuzz bytes into a host count in 1..100000 and at most 16
// IPv4 prefixes.
func decodeFuzz(data []byte) (int, []netip.Prefix) {
	var h [4]byte
	n := copy(h[:], data)
	data = data[n:]
	hosts := 1 + int(uint32(h[0])<<24|uint32(h[1])<<16|uint32(h[2])<<8|uint32(h[3]))%100000
	var used []netip.Prefix
	for len(data) >= 5 && len(used) < 16 {
		a := netip.AddrFrom4([4]byte{data[0], data[1], data[2], data[3]})
		used = append(used, netip.PrefixFrom(a, int(data[4])%33))
		data = data[5:]
	}
	return hosts, used
}

// encodeFuzz is the inverse of decodeFuzz, for seeds.
func encodeFuzz(hosts int, cidrs ...string) []byte {
	v := uint32(hosts - 1)
	out := []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for _, p := range pfx(cidrs...) {
		a := p.Addr().As4()
		out = append(out, a[0], a[1], a[2], a[3], byte(p.Bits()))
	}
	return out
}

// oracleLowest finds the lowest free aligned /l in PrivateBlocks order
// without Free: each used prefix blocks a contiguous range of candidate
// indices of a block, and the answer is the first index no range covers.
func oracleLowest(used []netip.Prefix, l int) (netip.Prefix, bool) {
	for _, b := range PrivateBlocks {
		if b.Bits() > l {
			continue
		}
		bs := toSpan(b)
		shift := uint(32 - l)
		n := (bs.hi - bs.lo) >> shift // candidates in the block
		type idx struct{ first, last uint64 }
		var blocked []idx
		for _, u := range used {
			us := toSpan(u.Masked())
			if us.hi <= bs.lo || us.lo >= bs.hi {
				continue
			}
			lo, hi := max(us.lo, bs.lo), min(us.hi, bs.hi)-1
			blocked = append(blocked, idx{(lo - bs.lo) >> shift, (hi - bs.lo) >> shift})
		}
		sort.Slice(blocked, func(i, j int) bool { return blocked[i].first < blocked[j].first })
		next := uint64(0) // lowest candidate not yet known to be blocked
		for _, r := range blocked {
			if r.first > next {
				break
			}
			next = max(next, r.last+1)
		}
		if next < n {
			return netip.PrefixFrom(addrFrom(bs.lo+next<<shift), l), true
		}
	}
	return netip.Prefix{}, false
}
