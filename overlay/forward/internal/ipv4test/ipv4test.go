// Package ipv4test builds and reads the IPv4 test packets of the forward
// tests. It imports nothing of forward, so both forward's internal tests
// and forwardtest (which imports forward, and re-exports these) can use
// the one implementation.
package ipv4test

import (
	"encoding/binary"
	"net/netip"
)

// minSize holds a 20-byte IPv4 header and the 4-byte sequence number.
const minSize = 20 + 4

// Packet builds a valid IPv4 packet (UDP protocol number, no options) of
// total length size (at least 24) whose payload starts with seq.
func Packet(src, dst netip.Addr, size int, seq uint32) []byte {
	size = max(size, minSize)
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(size))
	b[8] = 64
	b[9] = 17
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint32(b[20:24], seq)
	return b
}

// Src returns the source address of an IPv4 packet.
func Src(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[12:16])) }

// Dst returns the destination address of an IPv4 packet.
func Dst(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[16:20])) }

// Seq returns the sequence number Packet put at the start of the payload
// (of a packet without IP options).
func Seq(pkt []byte) uint32 { return binary.BigEndian.Uint32(pkt[20:24]) }

// TCP builds an IPv4 TCP packet (TTL 64, DF, IP ID id) carrying payload,
// with a TCP header of 20+optLen bytes (optLen a multiple of 4, options
// filled with NOPs), sequence number seq and flags. If partial, the TCP
// checksum field holds the pseudo-header sum a kernel leaves for
// checksum offload (as in a super-packet read from a TUN with offloads);
// otherwise the checksum is complete.
func TCP(src, dst netip.Addr, id uint16, seq uint32, flags byte, optLen int, payload []byte, partial bool) []byte {
	thl := 20 + optLen
	b := make([]byte, 20+thl+len(payload))
	ipHeader(b, src, dst, id, 6)
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 5201)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 77)
	t[12] = byte(thl/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	for i := 20; i < thl; i++ {
		t[i] = 1 // NOP
	}
	copy(t[thl:], payload)
	l4Checksum(b, 16, partial)
	return b
}

// UDP builds an IPv4 UDP datagram carrying payload (checksum as for TCP).
func UDP(src, dst netip.Addr, id uint16, payload []byte, partial bool) []byte {
	b := make([]byte, 28+len(payload))
	ipHeader(b, src, dst, id, 17)
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 5201)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	l4Checksum(b, 6, partial)
	return b
}

func ipHeader(b []byte, src, dst netip.Addr, id uint16, proto byte) {
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	b[6] = 0x40 // DF
	b[8] = 64
	b[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:], ^Checksum(b[:20], 0))
}

// l4Checksum fills the transport checksum at offset co of the transport header.
func l4Checksum(b []byte, co int, partial bool) {
	l4 := b[20:]
	ps := PseudoSum(b, len(l4))
	if partial {
		binary.BigEndian.PutUint16(l4[co:], Checksum(nil, ps))
		return
	}
	c := ^Checksum(l4, ps)
	if c == 0 && b[9] == 17 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[co:], c)
}

// PseudoSum is the unfolded IPv4 pseudo-header sum of packet b for a
// transport segment of l4Len bytes.
func PseudoSum(b []byte, l4Len int) uint32 {
	var s uint32
	for i := 12; i < 20; i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s + uint32(b[9]) + uint32(l4Len)
}

// Checksum is the folded (not complemented) one's-complement sum of b,
// byte by byte, starting from initial: a plain reference implementation.
func Checksum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i < len(b); i++ {
		if i%2 == 0 {
			s += uint32(b[i]) << 8
		} else {
			s += uint32(b[i])
		}
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// ValidChecksums reports whether IPv4 packet b (no options) has a correct
// header checksum and a correct TCP or UDP checksum.
func ValidChecksums(b []byte) bool {
	if len(b) < 20 || Checksum(b[:20], 0) != 0xffff {
		return false
	}
	return Checksum(b[20:], PseudoSum(b, len(b)-20)) == 0xffff
}
