package forward

import (
	"encoding/binary"
	"errors"
)

// Segmentation offload (GSO) support: the virtio-net header a TUN device
// with IFF_VNET_HDR puts in front of every packet, checksum completion,
// and software segmentation of TCP/UDP super-packets for devices without
// offloads.
//
// A super-packet is one IPv4 packet of up to 64 KiB whose transport
// payload the kernel cuts into gsoSize-byte segments when it is written
// (with its virtio-net header) to a TUN with offloads, or that
// segmentIPv4 cuts in software.

// VirtioNetHdrLen is the size of the virtio-net header (struct
// virtio_net_hdr) an offload device exchanges in front of each packet.
const VirtioNetHdrLen = 10

// virtio_net_hdr flags and GSO types (linux/virtio_net.h).
const (
	virtioNeedsCsum = 1

	gsoNone  = 0
	gsoTCPv4 = 1
	gsoUDPL4 = 5
	gsoECN   = 0x80
)

// virtioHdr is a decoded virtio_net_hdr (native byte order, as TUN uses
// unless told otherwise).
type virtioHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func decodeVirtio(b []byte) virtioHdr {
	_ = b[VirtioNetHdrLen-1]
	return virtioHdr{
		flags:      b[0],
		gsoType:    b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

func (h virtioHdr) encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// maxSoftSegments bounds the segments one super-packet may be cut into in
// software (64 KiB at an MSS of 536 is 123): a peer announcing a tiny
// segment size cannot make the receiver write thousands of packets.
const maxSoftSegments = 256

var errBadGSO = errors.New("bad GSO super-packet")

// gsoLayout checks a super-packet (a valid IPv4 packet, see validIPv4)
// against its GSO type and segment size and returns the IP header length
// and the length of all headers (IP + TCP/UDP).
func gsoLayout(pkt []byte, gsoType uint8, gsoSize int) (ihl, hdrLen int, err error) {
	ihl = int(pkt[0]&0x0f) * 4
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // MF or fragment offset
		return 0, 0, errBadGSO
	}
	switch gsoType &^ gsoECN {
	case gsoTCPv4:
		if pkt[9] != 6 || len(pkt) < ihl+20 {
			return 0, 0, errBadGSO
		}
		hdrLen = ihl + int(pkt[ihl+12]>>4)*4
		if hdrLen < ihl+20 || hdrLen > len(pkt) {
			return 0, 0, errBadGSO
		}
	case gsoUDPL4:
		if pkt[9] != 17 || gsoType&gsoECN != 0 {
			return 0, 0, errBadGSO
		}
		hdrLen = ihl + 8
	default:
		return 0, 0, errBadGSO
	}
	payload := len(pkt) - hdrLen
	if gsoSize <= 0 || payload <= 0 || (payload+gsoSize-1)/gsoSize > maxSoftSegments {
		return 0, 0, errBadGSO
	}
	return ihl, hdrLen, nil
}

// l4CsumOffset is where the checksum field sits in the transport header.
func l4CsumOffset(proto byte) int {
	if proto == 6 {
		return 16
	}
	return 6
}

// gsoVirtioHdr returns the virtio-net header to write super-packet pkt
// with, and stores the partial (pseudo-header) checksum the kernel
// expects with VIRTIO_NET_HDR_F_NEEDS_CSUM into pkt's transport header.
func gsoVirtioHdr(pkt []byte, gsoType uint8, gsoSize, ihl, hdrLen int) virtioHdr {
	co := l4CsumOffset(pkt[9])
	psum := pseudoSum(pkt, pkt[9], len(pkt)-ihl)
	binary.BigEndian.PutUint16(pkt[ihl+co:], fold(psum))
	return virtioHdr{
		flags:      virtioNeedsCsum,
		gsoType:    gsoType,
		hdrLen:     uint16(hdrLen),
		gsoSize:    uint16(gsoSize),
		csumStart:  uint16(ihl),
		csumOffset: uint16(co),
	}
}

// completeCsum finishes a checksum the kernel left partial
// (VIRTIO_NET_HDR_F_NEEDS_CSUM on a packet without GSO): the field at
// csumStart+csumOffset holds the pseudo-header sum; the checksum covers
// everything from csumStart.
func completeCsum(pkt []byte, h virtioHdr) bool {
	start, at := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if start >= len(pkt) || at+2 > len(pkt) {
		return false
	}
	c := ^fold(sum(pkt[start:], 0))
	if c == 0 && at-start == 6 { // UDP: 0 means "no checksum"
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[at:], c)
	return true
}

// segmentIPv4 cuts super-packet pkt (checked by gsoLayout) into segments
// of at most gsoSize payload bytes with complete IP and TCP/UDP checksums,
// writing segment i to out[i][offset:] and its length to sizes[i]. It
// returns the number of segments; out must hold enough buffers of at
// least offset+hdrLen+gsoSize bytes.
func segmentIPv4(pkt []byte, gsoSize, ihl, hdrLen int, out [][]byte, sizes []int, offset int) int {
	proto := pkt[9]
	id := binary.BigEndian.Uint16(pkt[4:6])
	payload := pkt[hdrLen:]
	var seq uint32
	if proto == 6 {
		seq = binary.BigEndian.Uint32(pkt[ihl+4:])
	}
	n := 0
	for off := 0; off < len(payload); off += gsoSize {
		end := min(off+gsoSize, len(payload))
		last := end == len(payload)
		seg := out[n][offset:]
		copy(seg, pkt[:hdrLen])
		segLen := hdrLen + copy(seg[hdrLen:], payload[off:end])
		seg = seg[:segLen]
		// IPv4 header: length, identification, checksum.
		binary.BigEndian.PutUint16(seg[2:], uint16(segLen))
		binary.BigEndian.PutUint16(seg[4:], id+uint16(n))
		seg[10], seg[11] = 0, 0
		binary.BigEndian.PutUint16(seg[10:], ^fold(sum(seg[:ihl], 0)))
		l4 := seg[ihl:]
		co := l4CsumOffset(proto)
		if proto == 6 {
			binary.BigEndian.PutUint32(l4[4:], seq+uint32(off))
			if n > 0 {
				l4[13] &^= 0x80 // CWR only on the first segment
			}
			if !last {
				l4[13] &^= 0x09 // FIN and PSH only on the last
			}
		} else {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		}
		l4[co], l4[co+1] = 0, 0
		c := ^fold(sum(l4, pseudoSum(seg, proto, len(l4))))
		if c == 0 && proto == 17 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[co:], c)
		sizes[n] = segLen
		n++
	}
	return n
}

// pseudoSum is the unfolded sum of pkt's IPv4 pseudo-header for a
// transport segment of l4Len bytes.
func pseudoSum(pkt []byte, proto byte, l4Len int) uint64 {
	s := uint64(binary.BigEndian.Uint16(pkt[12:])) + uint64(binary.BigEndian.Uint16(pkt[14:])) +
		uint64(binary.BigEndian.Uint16(pkt[16:])) + uint64(binary.BigEndian.Uint16(pkt[18:]))
	return s + uint64(proto) + uint64(l4Len)
}

// sum adds b as big-endian 16-bit words (an odd last byte padded with
// zero) to the unfolded one's-complement sum s.
func sum(b []byte, s uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v>>48 + (v>>32)&0xffff + (v>>16)&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds an unfolded sum into 16 bits (not complemented).
func fold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
