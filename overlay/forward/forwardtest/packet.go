package forwardtest

import (
	"net/netip"

	"github.com/cloud-barista/cbnode/overlay/forward/internal/ipv4test"
)

// IPv4Packet builds a valid IPv4 packet (UDP protocol number, TTL 64, no
// options) of total length size, at least 24 bytes, whose payload starts
// with the big-endian sequence number seq (see Seq).
func IPv4Packet(src, dst netip.Addr, size int, seq uint32) []byte {
	return ipv4test.Packet(src, dst, size, seq)
}

// Src returns the source address of an IPv4 packet.
func Src(pkt []byte) netip.Addr { return ipv4test.Src(pkt) }

// Dst returns the destination address of an IPv4 packet.
func Dst(pkt []byte) netip.Addr { return ipv4test.Dst(pkt) }

// Seq returns the sequence number IPv4Packet put into pkt.
func Seq(pkt []byte) uint32 { return ipv4test.Seq(pkt) }

// TCPPacket builds an IPv4 TCP packet; with partial, its checksum is left
// as a TUN with offloads hands super-packets over (see ipv4test.TCP).
func TCPPacket(src, dst netip.Addr, id uint16, seq uint32, flags byte, optLen int, payload []byte, partial bool) []byte {
	return ipv4test.TCP(src, dst, id, seq, flags, optLen, payload, partial)
}

// UDPPacket builds an IPv4 UDP datagram (see ipv4test.UDP).
func UDPPacket(src, dst netip.Addr, id uint16, payload []byte, partial bool) []byte {
	return ipv4test.UDP(src, dst, id, payload, partial)
}

// ValidChecksums reports whether an IPv4 packet without options has
// correct IP and TCP/UDP checksums.
func ValidChecksums(pkt []byte) bool { return ipv4test.ValidChecksums(pkt) }
