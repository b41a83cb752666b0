// Package ipam does the address planning for a CLADNet: the private IPv4
// subnet that spans the VMs of a mesh across many clouds.
//
// A CLADNet range must collide with none of the members' underlay subnets.
// The functions in this file do real range arithmetic on IPv4 addresses
// (as uint32 intervals) instead of comparing prefix lengths, so for example
// used subnets 192.168.1.0/24, 192.168.2.0/24 and 192.168.3.0/24 never lead
// to a recommendation that overlaps any of them.
package ipam

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"sort"
	"strings"
)

// PrivateBlocks are the RFC 1918 private IPv4 blocks, in the order in which
// Recommend searches them.
var PrivateBlocks = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// DefaultHeadroom is the growth factor Recommend applies to the host count:
// a CLADNet is sized with room to double, so hosts members get a subnet with
// at least 2*hosts usable addresses.
const DefaultHeadroom = 2.0

const (
	// minPrefixLen is the shortest prefix length that fits any private
	// block (10.0.0.0/8).
	minPrefixLen = 8
	// maxPrefixLen is the longest prefix length handed out: a /30 has two
	// usable addresses; /31 and /32 have none once the network and
	// broadcast addresses are excluded.
	maxPrefixLen = 30
	// maxListedUsed bounds how many used prefixes an error message lists.
	maxListedUsed = 8
)

// FreeSpace is the free part of one private block.
type FreeSpace struct {
	// Block is the private block, one of PrivateBlocks.
	Block netip.Prefix
	// Free is the minimal sorted list of prefixes of Block that overlap no
	// used prefix. It is empty when the whole block is in use.
	Free []netip.Prefix
}

// ParsePrefixes parses IPv4 CIDR strings such as "10.0.0.0/16" and returns
// them masked to their canonical form (10.0.0.1/24 becomes 10.0.0.0/24), in
// input order. A bare address without a prefix length, an IPv6 prefix
// (including an IPv4-mapped one such as ::ffff:10.0.0.0/104) or any other
// malformed string is an error.
func ParsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parsePrefix parses one IPv4 CIDR string; see ParsePrefixes.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse %q: not a CIDR: %w", s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: IPv6 is not supported, need an IPv4 CIDR", s)
	}
	return p.Masked(), nil
}

// Overlaps reports whether prefixes a and b share at least one address.
// Prefixes of different address families never overlap.
func Overlaps(a, b netip.Prefix) bool {
	return a.Overlaps(b)
}

// UsableHosts returns the number of host addresses of an IPv4 prefix, the
// network and broadcast addresses excluded: 2^(32-bits) - 2 for prefix
// lengths up to 30. It returns 0 for /31, /32, IPv6 and invalid prefixes.
func UsableHosts(p netip.Prefix) int {
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() > maxPrefixLen {
		return 0
	}
	return clampInt(usable(p.Bits()))
}

// usable returns the usable host count of an IPv4 prefix of length bits
// (0 <= bits <= 30).
func usable(bits int) uint64 {
	return uint64(1)<<(32-bits) - 2
}

// clampInt converts n to int, saturating on platforms with a 32-bit int.
func clampInt(n uint64) int {
	const maxInt = int(^uint(0) >> 1)
	if n > uint64(maxInt) {
		return maxInt
	}
	return int(n)
}

// RequiredPrefixLen returns the longest IPv4 prefix length (the smallest
// subnet) whose usable addresses hold ceil(hosts*headroom) hosts. The result
// is at most 30: /31 and /32 are never returned. hosts must be positive and
// headroom a finite number >= 1 (use DefaultHeadroom for "room to double").
// A size that needs more than a /8, the largest private block, is an error.
func RequiredPrefixLen(hosts int, headroom float64) (int, error) {
	if hosts <= 0 {
		return 0, fmt.Errorf("hosts %d: need at least 1 host", hosts)
	}
	// The negated comparison also rejects NaN.
	if !(headroom >= 1) || math.IsInf(headroom, 1) {
		return 0, fmt.Errorf("headroom %v: need a finite number >= 1", headroom)
	}
	need := float64(hosts) * headroom // ceil is implied by the >= below
	for l := maxPrefixLen; l >= 0; l-- {
		if float64(usable(l)) < need {
			continue
		}
		if l < minPrefixLen {
			return 0, fmt.Errorf("hosts %d need a /%d, larger than the largest private block (%s)",
				hosts, l, PrivateBlocks[0])
		}
		return l, nil
	}
	return 0, fmt.Errorf("hosts %d need more addresses than the whole IPv4 space, larger than the largest private block (%s)",
		hosts, PrivateBlocks[0])
}

// Recommend returns a CIDR for a CLADNet of hosts members that overlaps none
// of used, sized with DefaultHeadroom. See RecommendWithHeadroom for the
// choice rule.
func Recommend(used []netip.Prefix, hosts int) (netip.Prefix, error) {
	return RecommendWithHeadroom(used, hosts, DefaultHeadroom)
}

// RecommendWithHeadroom returns the smallest prefix whose usable addresses
// hold ceil(hosts*headroom) hosts (see RequiredPrefixLen) and that overlaps
// none of used.
//
// The choice is deterministic: the blocks are searched in the order of
// PrivateBlocks (10.0.0.0/8, then 172.16.0.0/12, then 192.168.0.0/16), and
// within the first block that has room the lowest-addressed aligned prefix
// of the required length lying entirely in free space wins. The order of
// used does not matter.
//
// Every used prefix must be a valid IPv4 prefix (as ParsePrefixes returns);
// an IPv6 or invalid entry is an error. If no block has room the error reads
// "no private block has a free /L for N hosts (used: ...)".
func RecommendWithHeadroom(used []netip.Prefix, hosts int, headroom float64) (netip.Prefix, error) {
	if err := checkIPv4(used); err != nil {
		return netip.Prefix{}, fmt.Errorf("recommend: %w", err)
	}
	l, err := RequiredPrefixLen(hosts, headroom)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("recommend: %w", err)
	}
	if p, ok := lowestFree(PrivateBlocks, used, l); ok {
		return p, nil
	}
	return netip.Prefix{}, fmt.Errorf("no private block has a free /%d for %d hosts (used: %s)",
		l, hosts, listPrefixes(used))
}

// lowestFree returns the lowest-addressed aligned prefix of length l that
// lies in the free space of the first of blocks that has one.
//
// Free returns a minimal greedy decomposition; any aligned /l inside a free
// range is contained in a single prefix of that decomposition, so the first
// free prefix of length <= l starts the lowest free /l.
func lowestFree(blocks, used []netip.Prefix, l int) (netip.Prefix, bool) {
	for _, b := range blocks {
		if b.Bits() > l {
			continue // the block is smaller than the required prefix
		}
		for _, f := range Free(b, used) {
			if f.Bits() <= l {
				return netip.PrefixFrom(f.Addr(), l), true
			}
		}
	}
	return netip.Prefix{}, false
}

// checkIPv4 reports an error for the first used prefix that is not a valid
// IPv4 prefix.
func checkIPv4(used []netip.Prefix) error {
	for i, p := range used {
		switch {
		case !p.IsValid():
			return fmt.Errorf("used[%d]: invalid prefix", i)
		case !p.Addr().Is4():
			return fmt.Errorf("used[%d] %q: IPv6 is not supported, need an IPv4 CIDR", i, p)
		}
	}
	return nil
}

// listPrefixes formats ps for an error message, listing at most
// maxListedUsed of them.
func listPrefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	n := min(len(ps), maxListedUsed)
	parts := make([]string, 0, n+1)
	for _, p := range ps[:n] {
		parts = append(parts, p.String())
	}
	if len(ps) > n {
		parts = append(parts, fmt.Sprintf("and %d more", len(ps)-n))
	}
	return strings.Join(parts, ", ")
}

// FreeSpaces returns the free space of each of PrivateBlocks, in that order,
// after removing every used prefix.
func FreeSpaces(used []netip.Prefix) []FreeSpace {
	out := make([]FreeSpace, 0, len(PrivateBlocks))
	for _, b := range PrivateBlocks {
		out = append(out, FreeSpace{Block: b, Free: Free(b, used)})
	}
	return out
}

// Free returns the free space of block after removing every used prefix, as
// the minimal sorted list of CIDR prefixes covering exactly the addresses of
// block that are in no used prefix.
//
// used may lie outside block, overlap it, be nested, duplicated, touching or
// cover block entirely (the result is then empty); non-canonical prefixes
// are masked first, and IPv6 or invalid entries, which cannot overlap an
// IPv4 block, are ignored. An invalid or IPv6 block has no free space.
func Free(block netip.Prefix, used []netip.Prefix) []netip.Prefix {
	if !block.IsValid() || !block.Addr().Is4() {
		return nil
	}
	whole := toSpan(block.Masked())
	var taken []span
	for _, u := range used {
		if !u.IsValid() || !u.Addr().Is4() {
			continue
		}
		if s, ok := toSpan(u.Masked()).clip(whole); ok {
			taken = append(taken, s)
		}
	}
	var out []netip.Prefix
	for _, s := range subtract(whole, merge(taken)) {
		out = append(out, s.prefixes()...)
	}
	return out
}

// span is a half-open range [lo, hi) of IPv4 addresses as integers. hi is a
// uint64 so that the range may end at 2^32 (the end of 0.0.0.0/0).
type span struct {
	lo, hi uint64
}

// toSpan returns the address range of a masked IPv4 prefix.
func toSpan(p netip.Prefix) span {
	a := p.Addr().As4()
	lo := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	return span{lo: lo, hi: lo + uint64(1)<<(32-p.Bits())}
}

// clip returns the part of s inside w, and false if they do not intersect.
func (s span) clip(w span) (span, bool) {
	c := span{lo: max(s.lo, w.lo), hi: min(s.hi, w.hi)}
	return c, c.lo < c.hi
}

// merge sorts spans and joins overlapping and touching ones. It reorders
// its argument.
func merge(ss []span) []span {
	sort.Slice(ss, func(i, j int) bool { return ss[i].lo < ss[j].lo })
	var out []span
	for _, s := range ss {
		if n := len(out); n > 0 && s.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, s.hi)
			continue
		}
		out = append(out, s)
	}
	return out
}

// subtract returns the parts of whole not covered by taken, which must be
// sorted, disjoint, non-touching and inside whole (as merge returns them).
func subtract(whole span, taken []span) []span {
	var out []span
	next := whole.lo
	for _, t := range taken {
		if t.lo > next {
			out = append(out, span{lo: next, hi: t.lo})
		}
		next = t.hi
	}
	if next < whole.hi {
		out = append(out, span{lo: next, hi: whole.hi})
	}
	return out
}

// prefixes decomposes s into the fewest aligned CIDR prefixes: from the
// start, it repeatedly takes the largest prefix that is aligned at the
// current address and ends within s. This greedy decomposition is minimal.
func (s span) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for lo := s.lo; lo < s.hi; {
		size := 32 // log2 of the block size; lo == 0 is aligned to /0
		if lo != 0 {
			size = bits.TrailingZeros64(lo)
		}
		for lo+uint64(1)<<size > s.hi {
			size--
		}
		out = append(out, netip.PrefixFrom(addrFrom(lo), 32-size))
		lo += uint64(1) << size
	}
	return out
}

// addrFrom returns the IPv4 address of integer n (n < 2^32).
func addrFrom(n uint64) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
