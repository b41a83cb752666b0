package ipam

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// pfx parses CIDR strings for tables; it panics on a typo in the test itself.
func pfx(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.0.0.1/24", "192.168.3.0/24", "0.0.0.0/0", "8.8.8.8/32"})
	if err != nil {
		t.Fatalf("ParsePrefixes: %v", err)
	}
	want := pfx("10.0.0.0/24", "192.168.3.0/24", "0.0.0.0/0", "8.8.8.8/32")
	if !slices.Equal(got, want) {
		t.Errorf("ParsePrefixes = %v, want %v", got, want)
	}

	if got, err := ParsePrefixes(nil); err != nil || len(got) != 0 {
		t.Errorf("ParsePrefixes(nil) = %v, %v; want empty, nil", got, err)
	}

	bad := []struct {
		in, wantErr string
	}{
		{"abc", `parse "abc": not a CIDR`},
		{"10.0.0.0/33", `parse "10.0.0.0/33": not a CIDR`},
		{"10.0.0.1", `parse "10.0.0.1": not a CIDR`}, // bare host address
		{"", `parse "": not a CIDR`},
		{" 10.0.0.0/8", `parse " 10.0.0.0/8": not a CIDR`},
		{"fd00::/8", `"fd00::/8": IPv6 is not supported, need an IPv4 CIDR`},
		{"::ffff:10.0.0.0/104", `"::ffff:10.0.0.0/104": IPv6 is not supported, need an IPv4 CIDR`},
	}
	for _, tc := range bad {
		got, err := ParsePrefixes([]string{"10.0.0.0/8", tc.in})
		if err == nil {
			t.Errorf("ParsePrefixes(%q) = %v, want error", tc.in, got)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.wantErr) {
			t.Errorf("ParsePrefixes(%q) error = %q, want prefix %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestUsableHosts(t *testing.T) {
	tests := []struct {
		in   netip.Prefix
		want int
	}{
		{netip.MustParsePrefix("10.0.0.0/8"), 1<<24 - 2},
		{netip.MustParsePrefix("10.0.0.0/24"), 254},
		{netip.MustParsePrefix("10.0.0.0/29"), 6},
		{netip.MustParsePrefix("10.0.0.0/30"), 2},
		{netip.MustParsePrefix("10.0.0.0/31"), 0},
		{netip.MustParsePrefix("10.0.0.0/32"), 0},
		{netip.MustParsePrefix("fd00::/8"), 0},
		{netip.Prefix{}, 0},
	}
	for _, tc := range tests {
		if got := UsableHosts(tc.in); got != tc.want {
			t.Errorf("UsableHosts(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestRequiredPrefixLen(t *testing.T) {
	tests := []struct {
		hosts    int
		headroom float64
		want     int
		wantErr  string
	}{
		{hosts: 1, headroom: DefaultHeadroom, want: 30},  // 2 usable
		{hosts: 2, headroom: DefaultHeadroom, want: 29},  // 4 > 2 usable of a /30
		{hosts: 3, headroom: DefaultHeadroom, want: 29},  // 6
		{hosts: 4, headroom: DefaultHeadroom, want: 28},  // 8 > 6
		{hosts: 20, headroom: DefaultHeadroom, want: 26}, // 40
		{hosts: 100, headroom: DefaultHeadroom, want: 24},
		{hosts: 127, headroom: DefaultHeadroom, want: 24}, // 254 exactly
		{hosts: 128, headroom: DefaultHeadroom, want: 23},
		{hosts: 1000, headroom: DefaultHeadroom, want: 21},
		{hosts: 1<<23 - 1, headroom: DefaultHeadroom, want: 8}, // 2^24-2 exactly
		{hosts: 1, headroom: 1, want: 30},
		{hosts: 3, headroom: 1, want: 29},
		{hosts: 3, headroom: 1.1, want: 29}, // ceil(3.3) = 4
		{hosts: 6, headroom: 1.5, want: 28}, // 9 > 6
		{hosts: 0, headroom: DefaultHeadroom, wantErr: "hosts 0: need at least 1 host"},
		{hosts: -1, headroom: DefaultHeadroom, wantErr: "hosts -1: need at least 1 host"},
		{hosts: 1 << 23, headroom: DefaultHeadroom,
			wantErr: "hosts 8388608 need a /7, larger than the largest private block (10.0.0.0/8)"},
		{hosts: 20_000_000, headroom: DefaultHeadroom,
			wantErr: "hosts 20000000 need a /6, larger than the largest private block (10.0.0.0/8)"},
		{hosts: math.MaxInt, headroom: DefaultHeadroom, wantErr: "more addresses than the whole IPv4 space"},
		{hosts: 3, headroom: 0.5, wantErr: "headroom 0.5: need a finite number >= 1"},
		{hosts: 3, headroom: math.NaN(), wantErr: "headroom NaN"},
		{hosts: 3, headroom: math.Inf(1), wantErr: "headroom +Inf"},
	}
	for _, tc := range tests {
		got, err := RequiredPrefixLen(tc.hosts, tc.headroom)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("RequiredPrefixLen(%d, %v) = %d, %v; want error %q", tc.hosts, tc.headroom, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("RequiredPrefixLen(%d, %v) = %d, %v; want %d", tc.hosts, tc.headroom, got, err, tc.want)
		}
	}
}

func TestFree(t *testing.T) {
	tests := []struct {
		name  string
		block string
		used  []netip.Prefix
		want  []netip.Prefix
	}{
		{"nothing used", "10.0.0.0/24", nil, pfx("10.0.0.0/24")},
		{"touching halves merge", "10.0.0.0/24",
			pfx("10.0.0.0/25", "10.0.0.128/25"), nil},
		{"touching quarters leave the rest", "10.0.0.0/24",
			pfx("10.0.0.64/26", "10.0.0.128/26"), pfx("10.0.0.0/26", "10.0.0.192/26")},
		{"nested", "10.0.0.0/15",
			pfx("10.0.1.0/24", "10.0.0.0/16"), pfx("10.1.0.0/16")},
		{"duplicates", "10.0.0.0/24",
			pfx("10.0.0.0/26", "10.0.0.0/26", "10.0.0.0/26"), pfx("10.0.0.64/26", "10.0.0.128/25")},
		{"outside all blocks", "10.0.0.0/8",
			pfx("8.8.8.0/24", "192.168.1.0/24", "11.0.0.0/8"), pfx("10.0.0.0/8")},
		{"used covers everything", "172.16.0.0/12", pfx("0.0.0.0/0"), nil},
		{"used larger than block", "10.0.0.0/8", pfx("10.0.0.0/7"), nil},
		{"whole block used", "192.168.0.0/16", pfx("192.168.0.0/16"), nil},
		{"ipv6 ignored", "10.0.0.0/24", pfx("::/0", "::ffff:10.0.0.0/104"), pfx("10.0.0.0/24")},
		{"non-canonical used is masked", "10.0.0.0/24",
			[]netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.77"), 25)}, pfx("10.0.0.128/25")},
		{"hole in the middle", "10.0.0.0/8", pfx("10.1.0.0/16"),
			pfx("10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13",
				"10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9")},
		{"unaligned range", "192.168.0.0/24",
			pfx("192.168.0.0/30", "192.168.0.8/29", "192.168.0.128/25"),
			pfx("192.168.0.4/30", "192.168.0.16/28", "192.168.0.32/27", "192.168.0.64/26")},
		{"cb-network case", "192.168.0.0/16",
			pfx("192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"),
			pfx("192.168.0.0/24", "192.168.4.0/22", "192.168.8.0/21", "192.168.16.0/20",
				"192.168.32.0/19", "192.168.64.0/18", "192.168.128.0/17")},
		{"whole IPv4 space", "0.0.0.0/0", pfx("0.0.0.0/1"), pfx("128.0.0.0/1")},
		{"last address", "255.255.255.0/24", pfx("255.255.255.255/32"),
			pfx("255.255.255.0/25", "255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28",
				"255.255.255.240/29", "255.255.255.248/30", "255.255.255.252/31", "255.255.255.254/32")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Free(netip.MustParsePrefix(tc.block), tc.used)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Free(%s, %v) =\n  %v\nwant\n  %v", tc.block, tc.used, got, tc.want)
			}
		})
	}
}

func TestFreeBadBlock(t *testing.T) {
	for _, b := range []netip.Prefix{{}, netip.MustParsePrefix("fd00::/8")} {
		if got := Free(b, nil); len(got) != 0 {
			t.Errorf("Free(%v, nil) = %v, want empty", b, got)
		}
	}
	// A non-canonical block is masked.
	b := netip.PrefixFrom(netip.MustParseAddr("10.0.0.5"), 30)
	if got, want := Free(b, nil), pfx("10.0.0.4/30"); !slices.Equal(got, want) {
		t.Errorf("Free(%v, nil) = %v, want %v", b, got, want)
	}
}

func TestFreeSpaces(t *testing.T) {
	used := pfx("10.0.0.0/8", "172.16.0.0/13", "8.8.8.0/24")
	got := FreeSpaces(used)
	want := []FreeSpace{
		{Block: PrivateBlocks[0]},
		{Block: PrivateBlocks[1], Free: pfx("172.24.0.0/13")},
		{Block: PrivateBlocks[2], Free: pfx("192.168.0.0/16")},
	}
	if len(got) != len(want) {
		t.Fatalf("FreeSpaces = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Block != want[i].Block || !slices.Equal(got[i].Free, want[i].Free) {
			t.Errorf("FreeSpaces[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if len(got[0].Free) != 0 {
		t.Errorf("fully used block has free space %v", got[0].Free)
	}
}

// TestFreeMinimalBruteForce compares Free on a /24 against an
// address-by-address model: same coverage, no mergeable siblings, and as
// many prefixes as a naive greedy decomposition of the free runs.
func TestFreeMinimalBruteForce(t *testing.T) {
	block := netip.MustParsePrefix("10.1.2.0/24")
	base := toSpan(block).lo
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 5000 {
		var used []netip.Prefix
		for range rng.IntN(8) {
			used = append(used, randomUsed(rng, block))
		}
		got := Free(block, used)

		var taken [256]bool
		for _, u := range used {
			for i := range 256 {
				if u.Contains(addrFrom(base + uint64(i))) {
					taken[i] = true
				}
			}
		}
		var covered [256]int
		for j, p := range got {
			if !block.Contains(p.Addr()) || p.Bits() < block.Bits() || p != p.Masked() {
				t.Fatalf("iter %d: %v not a canonical prefix of %v", iter, p, block)
			}
			if j > 0 && got[j-1].Addr().Compare(p.Addr()) >= 0 {
				t.Fatalf("iter %d: output not sorted: %v", iter, got)
			}
			if j > 0 && siblings(got[j-1], p) {
				t.Fatalf("iter %d: %v and %v could merge: %v", iter, got[j-1], p, got)
			}
			s := toSpan(p)
			for a := s.lo; a < s.hi; a++ {
				covered[a-base]++
			}
		}
		for i := range 256 {
			if want := map[bool]int{true: 0, false: 1}[taken[i]]; covered[i] != want {
				t.Fatalf("iter %d: used %v: address .%d covered %d times, want %d (got %v)",
					iter, used, i, covered[i], want, got)
			}
		}
		if want := naiveCount(taken[:]); len(got) != want {
			t.Fatalf("iter %d: used %v: %d prefixes %v, naive greedy gives %d", iter, used, len(got), got, want)
		}
	}
}

// randomUsed returns a random /26-/30 inside block, and sometimes a prefix
// outside it or covering it.
func randomUsed(rng *rand.Rand, block netip.Prefix) netip.Prefix {
	switch rng.IntN(10) {
	case 0:
		return netip.MustParsePrefix("10.1.3.0/24") // touching, outside
	case 1:
		return netip.PrefixFrom(block.Addr(), 16+rng.IntN(9)).Masked() // covers block
	}
	a := block.Addr().As4()
	a[3] = byte(rng.IntN(256))
	return netip.PrefixFrom(netip.AddrFrom4(a), 26+rng.IntN(5)).Masked()
}

// siblings reports whether a and b are the two halves of one prefix.
func siblings(a, b netip.Prefix) bool {
	if a.Bits() != b.Bits() || a.Bits() == 0 {
		return false
	}
	pa, _ := a.Addr().Prefix(a.Bits() - 1)
	pb, _ := b.Addr().Prefix(b.Bits() - 1)
	return pa == pb
}

// naiveCount counts the prefixes of a greedy decomposition of the free runs
// of taken (256 addresses), trying block sizes from 256 down at each address.
func naiveCount(taken []bool) int {
	n := 0
	for i := 0; i < len(taken); {
		if taken[i] {
			i++
			continue
		}
		for size := len(taken); size >= 1; size /= 2 {
			if i%size == 0 && i+size <= len(taken) && !slices.Contains(taken[i:i+size], true) {
				n++
				i += size
				break
			}
		}
	}
	return n
}

func TestRecommend(t *testing.T) {
	tests := []struct {
		name    string
		used    []netip.Prefix
		hosts   int
		want    string
		wantErr string
	}{
		{name: "nothing used", hosts: 3, want: "10.0.0.0/29"},
		{name: "cb-network case", hosts: 3,
			used: pfx("192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24"), want: "10.0.0.0/29"},
		{name: "cb-network case, only 192.168/16 left", hosts: 3,
			used: pfx("192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24", "10.0.0.0/8", "172.16.0.0/12"),
			want: "192.168.0.0/29"},
		{name: "cb-network case with 192.168.0.0/24 too", hosts: 3,
			used: pfx("192.168.0.0/24", "192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24",
				"10.0.0.0/8", "172.16.0.0/12"),
			want: "192.168.4.0/29"},
		{name: "skips a used low range", hosts: 100,
			used: pfx("10.0.0.0/24", "10.0.1.0/25"), want: "10.0.2.0/24"},
		{name: "takes an aligned gap between used", hosts: 3,
			used: pfx("10.0.0.0/29", "10.0.0.16/28"), want: "10.0.0.8/29"},
		{name: "unaligned gap too small", hosts: 3,
			used: pfx("10.0.0.0/30", "10.0.0.12/30"), want: "10.0.0.16/29"},
		{name: "too big for 172.16 and 192.168", hosts: 600_000,
			used:    pfx("10.0.0.0/9", "10.128.0.0/10", "10.192.0.0/11", "10.224.0.0/12", "10.240.0.0/12"),
			wantErr: "no private block has a free /11 for 600000 hosts"},
		{name: "falls through to 172.16", hosts: 500_000,
			used: pfx("10.0.0.0/9", "10.128.0.0/10", "10.192.0.0/11", "10.224.0.0/12", "10.240.0.0/12"),
			want: "172.16.0.0/12"},
		{name: "all three blocks used", hosts: 1,
			used:    pfx("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
			wantErr: "no private block has a free /30 for 1 hosts (used: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"},
		{name: "whole space used", hosts: 1, used: pfx("0.0.0.0/0"),
			wantErr: "no private block has a free /30 for 1 hosts (used: 0.0.0.0/0)"},
		{name: "long used list is shortened", hosts: 1,
			used: pfx("0.0.0.0/0", "1.0.0.0/8", "2.0.0.0/8", "3.0.0.0/8", "4.0.0.0/8",
				"5.0.0.0/8", "6.0.0.0/8", "7.0.0.0/8", "8.0.0.0/8", "9.0.0.0/8"),
			wantErr: "7.0.0.0/8, and 2 more)"},
		{name: "ipv6 used", hosts: 3, used: pfx("10.0.0.0/24", "fd00::/8"),
			wantErr: `recommend: used[1] "fd00::/8": IPv6 is not supported, need an IPv4 CIDR`},
		{name: "invalid used", hosts: 3, used: []netip.Prefix{{}},
			wantErr: "recommend: used[0]: invalid prefix"},
		{name: "hosts 0", hosts: 0, wantErr: "recommend: hosts 0: need at least 1 host"},
		{name: "hosts -1", hosts: -1, wantErr: "recommend: hosts -1: need at least 1 host"},
		{name: "hosts 20M", hosts: 20_000_000,
			wantErr: "recommend: hosts 20000000 need a /6, larger than the largest private block (10.0.0.0/8)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Recommend(tc.used, tc.hosts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Recommend = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("Recommend = %v, %v; want %s", got, err, tc.want)
			}
			for _, u := range tc.used {
				if got.Overlaps(u) {
					t.Errorf("Recommend = %v overlaps used %v", got, u)
				}
			}
			// The answer does not depend on the order of used.
			rev := slices.Clone(tc.used)
			slices.Reverse(rev)
			if again, err := Recommend(rev, tc.hosts); err != nil || again != got {
				t.Errorf("Recommend(reversed used) = %v, %v; want %v", again, err, got)
			}
		})
	}
}

func TestRecommendWithHeadroom(t *testing.T) {
	used := pfx("10.0.0.0/29")
	got, err := RecommendWithHeadroom(used, 3, 1)
	if err != nil || got.String() != "10.0.0.8/29" {
		t.Errorf("RecommendWithHeadroom(headroom 1) = %v, %v; want 10.0.0.8/29", got, err)
	}
	if got, err := RecommendWithHeadroom(used, 3, 0); err == nil {
		t.Errorf("RecommendWithHeadroom(headroom 0) = %v, want error", got)
	}
}

// TestLowestFreeBruteForce checks the choice rule against enumeration of
// every aligned candidate on small blocks: the first block with a free
// candidate wins, and within it the lowest free candidate.
func TestLowestFreeBruteForce(t *testing.T) {
	blocks := pfx("10.0.0.0/24", "10.0.4.0/25", "10.0.2.0/24")
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 3000 {
		var used []netip.Prefix
		for range rng.IntN(10) {
			b := blocks[rng.IntN(len(blocks))]
			used = append(used, randomUsed(rng, b))
		}
		l := 24 + rng.IntN(7)
		got, gotOK := lowestFree(blocks, used, l)
		want, wantOK := enumerateFree(blocks, used, l)
		if got != want || gotOK != wantOK {
			t.Fatalf("iter %d: lowestFree(/%d, used %v) = %v, %v; enumeration gives %v, %v",
				iter, l, used, got, gotOK, want, wantOK)
		}
	}
}

// enumerateFree tries every aligned /l of each block in order.
func enumerateFree(blocks, used []netip.Prefix, l int) (netip.Prefix, bool) {
	for _, b := range blocks {
		if b.Bits() > l {
			continue
		}
		s := toSpan(b)
		step := uint64(1) << (32 - l)
		for a := s.lo; a < s.hi; a += step {
			c := netip.PrefixFrom(addrFrom(a), l)
			if !slices.ContainsFunc(used, c.Overlaps) {
				return c, true
			}
		}
	}
	return netip.Prefix{}, false
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/8", "10.1.0.0/16", true},
		{"10.0.0.0/25", "10.0.0.128/25", false},
		{"0.0.0.0/0", "192.168.0.0/16", true},
		{"10.0.0.0/8", "::ffff:10.0.0.0/104", false},
	}
	for _, tc := range tests {
		a, b := netip.MustParsePrefix(tc.a), netip.MustParsePrefix(tc.b)
		if got := Overlaps(a, b); got != tc.want {
			t.Errorf("Overlaps(%v, %v) = %v, want %v", a, b, got, tc.want)
		}
	}
}
