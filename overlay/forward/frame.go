package forward

import "encoding/binary"

// Wire format
//
// Every message on a packet stream is a frame: a fixed 4-byte header
// followed by Length bytes of payload.
//
//	 0        1        2        3
//	+--------+--------+--------+--------+------------------
//	|  Type  | Flags  |  Length (BE16)  |  payload ...
//	+--------+--------+--------+--------+------------------
//
//	Type    FrameData, FrameKeepalive, FrameProbe or FrameProbeReply.
//	Flags   reserved: senders set 0, receivers ignore it (FrameGSO: the
//	        GSO type, see below).
//	Length  payload length in bytes, big-endian.
//
// Payloads:
//
//	Data        one complete IPv4 packet (1..MTU+LengthSlack bytes).
//	Keepalive   empty (a non-empty payload is skipped).
//	Probe       8-byte big-endian id + 8-byte big-endian sender timestamp (unix nanos).
//	ProbeReply  the 16 probe bytes echoed back unchanged.
//	GSO         a TCP or UDP IPv4 super-packet of up to 65535 bytes read from
//	            a TUN with offloads, sent as one frame: Flags is the
//	            virtio-net GSO type (1 TCPv4, 5 UDP; 0x80 ECN), and the
//	            4-byte header is followed by 4 more bytes, gso_size (BE16,
//	            the segment size) and 2 reserved bytes, then the packet
//	            (Length counts only the packet). Its transport checksum is
//	            not valid: the receiver writes it to its TUN with a
//	            virtio-net header (the kernel segments it and completes the
//	            checksums), or segments it in software.
//
// A stream carries frames in one direction only: the dialing side writes,
// the accepting side reads. Replies travel on the reverse stream.

// FrameType is the first byte of a frame header.
type FrameType uint8

// Frame types.
const (
	FrameData       FrameType = 0
	FrameKeepalive  FrameType = 1
	FrameProbe      FrameType = 2
	FrameProbeReply FrameType = 3
	FrameGSO        FrameType = 4
)

func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "data"
	case FrameKeepalive:
		return "keepalive"
	case FrameProbe:
		return "probe"
	case FrameProbeReply:
		return "probe_reply"
	case FrameGSO:
		return "gso"
	default:
		return "unknown"
	}
}

const (
	// HeaderLen is the size of the frame header.
	HeaderLen = 4
	// gsoHeaderLen is the size of a FrameGSO header (HeaderLen + gso_size
	// + 2 reserved bytes).
	gsoHeaderLen = HeaderLen + 4
	// LengthSlack is accepted on top of the local MTU for incoming data
	// frames, so peers with a slightly larger MTU still interoperate.
	LengthSlack = 128
	// maxFrameLen is what the 16-bit length field can express.
	maxFrameLen = 0xFFFF
	// probeLen is the payload length of Probe and ProbeReply frames.
	probeLen = 16
	// ipv4MinHeader is the minimum IPv4 header length (IHL = 5).
	ipv4MinHeader = 20
)

// putHeader encodes a frame header into b[:HeaderLen].
func putHeader(b []byte, t FrameType, payloadLen int) {
	_ = b[3]
	b[0] = byte(t)
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:4], uint16(payloadLen))
}

// putGSOHeader encodes a FrameGSO header into b[:gsoHeaderLen].
func putGSOHeader(b []byte, gsoType uint8, gsoSize, pktLen int) {
	_ = b[gsoHeaderLen-1]
	b[0] = byte(FrameGSO)
	b[1] = gsoType
	binary.BigEndian.PutUint16(b[2:4], uint16(pktLen))
	binary.BigEndian.PutUint16(b[4:6], uint16(gsoSize))
	b[6], b[7] = 0, 0
}

// parseHeader decodes a frame header from b[:HeaderLen].
func parseHeader(b []byte) (t FrameType, payloadLen int) {
	_ = b[3]
	return FrameType(b[0]), int(binary.BigEndian.Uint16(b[2:4]))
}

// appendKeepalive appends a complete Keepalive frame to b.
func appendKeepalive(b []byte) []byte { return append(b, byte(FrameKeepalive), 0, 0, 0) }

// validIPv4 reports whether pkt is a plausible IPv4 packet whose total
// length field matches len(pkt) exactly.
func validIPv4(pkt []byte) bool {
	if len(pkt) < ipv4MinHeader {
		return false
	}
	if pkt[0]>>4 != 4 {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4MinHeader {
		return false
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	return total == len(pkt) && ihl <= total
}
