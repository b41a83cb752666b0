package filter

import "encoding/binary"

// IP protocol numbers the filter understands.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// ICMP types with special meaning to connection tracking.
const (
	icmpEchoReply      = 0
	icmpUnreachable    = 3
	icmpEcho           = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmpInnerMinLength = 8 // ICMP header before the quoted packet
)

// pktInfo is what the filter reads from an IPv4 packet.
type pktInfo struct {
	proto    uint8
	src, dst uint32
	// sport/dport are the TCP/UDP ports; for ICMP echo and echo reply
	// sport carries the identifier (dport 0).
	sport, dport uint16
	icmpType     uint8
	hasPorts     bool // TCP/UDP header present (not a later fragment)
	l4           []byte
}

// parse reads pkt (already checked by the engine to be a sane IPv4
// packet). ok is false if it is too short to be one.
func parse(pkt []byte) (pi pktInfo, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return pi, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || ihl > len(pkt) {
		return pi, false
	}
	pi.proto = pkt[9]
	pi.src = binary.BigEndian.Uint32(pkt[12:16])
	pi.dst = binary.BigEndian.Uint32(pkt[16:20])
	if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
		return pi, true // later fragment: no L4 header
	}
	l4 := pkt[ihl:]
	pi.l4 = l4
	switch pi.proto {
	case protoTCP, protoUDP:
		if len(l4) >= 4 {
			pi.sport = binary.BigEndian.Uint16(l4[0:2])
			pi.dport = binary.BigEndian.Uint16(l4[2:4])
			pi.hasPorts = true
		}
	case protoICMP:
		if len(l4) >= 1 {
			pi.icmpType = l4[0]
		}
		if (pi.icmpType == icmpEcho || pi.icmpType == icmpEchoReply) && len(l4) >= 6 {
			pi.sport = binary.BigEndian.Uint16(l4[4:6])
			pi.hasPorts = true
		}
	}
	return pi, true
}

// icmpError reports whether t is an ICMP error quoting the offending packet.
func icmpError(t uint8) bool {
	return t == icmpUnreachable || t == icmpTimeExceeded || t == icmpParamProblem
}
