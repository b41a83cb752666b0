package forwardtest

import "encoding/binary"

// VirtioNetHdrLen is the size of the virtio-net header an offload device
// puts in front of each packet (as forward.VirtioNetHdrLen).
const VirtioNetHdrLen = 10

// GSO types and flags of the virtio-net header (linux/virtio_net.h).
const (
	VirtioNeedsCsum = 1
	GSONone         = 0
	GSOTCPv4        = 1
	GSOUDPL4        = 5
)

// Virtio is a virtio-net header (struct virtio_net_hdr, native byte order).
type Virtio struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// Bytes encodes h.
func (h Virtio) Bytes() []byte {
	b := make([]byte, VirtioNetHdrLen)
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
	return b
}

// ParseVirtio decodes a virtio-net header.
func ParseVirtio(b []byte) Virtio {
	return Virtio{
		Flags: b[0], GSOType: b[1],
		HdrLen:     binary.NativeEndian.Uint16(b[2:]),
		GSOSize:    binary.NativeEndian.Uint16(b[4:]),
		CsumStart:  binary.NativeEndian.Uint16(b[6:]),
		CsumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}
