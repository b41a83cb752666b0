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
