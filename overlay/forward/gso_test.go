package forward

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cloud-barista/cbnode/overlay/forward/internal/ipv4test"
)

var (
	gsoSrc = netip.MustParseAddr("10.0.0.1")
	gsoDst = netip.MustParseAddr("10.0.0.9")
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// segmentAll cuts pkt in software and returns the segments.
func segmentAll(t *testing.T, pkt []byte, gsoType uint8, mss int) [][]byte {
	t.Helper()
	ihl, hdrLen, err := gsoLayout(pkt, gsoType, mss)
	if err != nil {
		t.Fatalf("gsoLayout: %v", err)
	}
	n := (len(pkt) - hdrLen + mss - 1) / mss
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, Headroom+hdrLen+mss)
	}
	sizes := make([]int, n)
	if got := segmentIPv4(pkt, mss, ihl, hdrLen, out, sizes, Headroom); got != n {
		t.Fatalf("%d segments, want %d", got, n)
	}
	segs := make([][]byte, n)
	for i := range segs {
		segs[i] = out[i][Headroom : Headroom+sizes[i]]
	}
	return segs
}

func TestSegmentTCP(t *testing.T) {
	const mss, optLen = 1368, 12
	payload := randomBytes(50000)
	const seq0 = 0xfffff000                  // wraps around
	flags := byte(0x80 | 0x10 | 0x08 | 0x01) // CWR ACK PSH FIN
	pkt := ipv4test.TCP(gsoSrc, gsoDst, 100, seq0, flags, optLen, payload, true)
	segs := segmentAll(t, pkt, gsoTCPv4|gsoECN, mss)
	if want := (len(payload) + mss - 1) / mss; len(segs) != want {
		t.Fatalf("%d segments, want %d", len(segs), want)
	}
	var got []byte
	for i, s := range segs {
		last := i == len(segs)-1
		if !validIPv4(s) || !ipv4test.ValidChecksums(s) {
			t.Fatalf("segment %d: bad IPv4 or checksum", i)
		}
		if id := binary.BigEndian.Uint16(s[4:]); id != 100+uint16(i) {
			t.Errorf("segment %d: IP ID %d", i, id)
		}
		if seq := binary.BigEndian.Uint32(s[24:]); seq != seq0+uint32(i*mss) {
			t.Errorf("segment %d: seq %#x", i, seq)
		}
		f := s[33]
		if (f&0x80 != 0) != (i == 0) {
			t.Errorf("segment %d: CWR %v", i, f&0x80 != 0)
		}
		if (f&0x09 != 0) != last || f&0x10 == 0 {
			t.Errorf("segment %d (last %v): flags %#x", i, last, f)
		}
		if !last && len(s) != 20+20+optLen+mss {
			t.Errorf("segment %d: %d bytes", i, len(s))
		}
		got = append(got, s[20+20+optLen:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("segments do not add up to the payload")
	}
}

func TestSegmentUDP(t *testing.T) {
	const mss = 1200
	payload := randomBytes(10*mss + 17)
	pkt := ipv4test.UDP(gsoSrc, gsoDst, 7, payload, true)
	segs := segmentAll(t, pkt, gsoUDPL4, mss)
	if len(segs) != 11 {
		t.Fatalf("%d segments", len(segs))
	}
	var got []byte
	for i, s := range segs {
		if !validIPv4(s) || !ipv4test.ValidChecksums(s) {
			t.Fatalf("segment %d: bad IPv4 or checksum", i)
		}
		if ul := int(binary.BigEndian.Uint16(s[24:])); ul != len(s)-20 {
			t.Errorf("segment %d: UDP length %d of %d", i, ul, len(s)-20)
		}
		got = append(got, s[28:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("datagrams do not add up to the payload")
	}
}

func TestGSOLayoutRejects(t *testing.T) {
	tcp := func() []byte { return ipv4test.TCP(gsoSrc, gsoDst, 1, 1, 0x10, 0, randomBytes(4000), true) }
	udp := func() []byte { return ipv4test.UDP(gsoSrc, gsoDst, 1, randomBytes(4000), true) }
	for _, tc := range []struct {
		name    string
		pkt     []byte
		typ     uint8
		gsoSize int
	}{
		{"udp as tcp", udp(), gsoTCPv4, 1000},
		{"tcp as udp", tcp(), gsoUDPL4, 1000},
		{"unknown type", tcp(), 3, 1000},
		{"ipv6 type", tcp(), 4, 1000},
		{"udp with ecn", udp(), gsoUDPL4 | gsoECN, 1000},
		{"segment size 0", tcp(), gsoTCPv4, 0},
		{"too many segments", tcp(), gsoTCPv4, 8},
		{"fragment", func() []byte { p := tcp(); p[6] |= 0x20; return p }(), gsoTCPv4, 1000},
		{"tcp data offset < 5", func() []byte { p := tcp(); p[32] = 4 << 4; return p }(), gsoTCPv4, 1000},
		{"tcp data offset past the end", func() []byte {
			return ipv4test.TCP(gsoSrc, gsoDst, 1, 1, 0x10, 0, nil, true)[:40]
		}(), gsoTCPv4, 1000},
		{"no payload", ipv4test.TCP(gsoSrc, gsoDst, 1, 1, 0x10, 0, nil, true), gsoTCPv4, 1000},
	} {
		if _, _, err := gsoLayout(tc.pkt, tc.typ, tc.gsoSize); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, hdrLen, err := gsoLayout(tcp(), gsoTCPv4|gsoECN, 1000); err != nil || hdrLen != 40 {
		t.Errorf("valid TCP super-packet: hdrLen %d, %v", hdrLen, err)
	}
}

func TestCompleteCsum(t *testing.T) {
	for _, pkt := range [][]byte{
		ipv4test.TCP(gsoSrc, gsoDst, 1, 9, 0x18, 12, randomBytes(999), true),
		ipv4test.UDP(gsoSrc, gsoDst, 1, randomBytes(333), true),
	} {
		co := uint16(l4CsumOffset(pkt[9]))
		if ipv4test.ValidChecksums(pkt) {
			t.Fatal("partial checksum already valid")
		}
		if !completeCsum(pkt, virtioHdr{flags: virtioNeedsCsum, csumStart: 20, csumOffset: co}) || !ipv4test.ValidChecksums(pkt) {
			t.Errorf("proto %d: checksum not completed", pkt[9])
		}
	}
	if completeCsum(make([]byte, 30), virtioHdr{csumStart: 20, csumOffset: 16}) {
		t.Error("checksum field past the end accepted")
	}
}

// TestGSOVirtioHdr: the header written to an offload device for a
// super-packet, and the partial checksum it expects.
func TestGSOVirtioHdr(t *testing.T) {
	pkt := ipv4test.TCP(gsoSrc, gsoDst, 1, 9, 0x10, 12, randomBytes(9000), true)
	want := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint16(pkt[36:], 0xdead) // whatever the peer sent
	ihl, hdrLen, err := gsoLayout(pkt, gsoTCPv4, 1368)
	if err != nil {
		t.Fatal(err)
	}
	h := gsoVirtioHdr(pkt, gsoTCPv4, 1368, ihl, hdrLen)
	if h != (virtioHdr{flags: virtioNeedsCsum, gsoType: gsoTCPv4, hdrLen: 52, gsoSize: 1368, csumStart: 20, csumOffset: 16}) {
		t.Errorf("header %+v", h)
	}
	if !bytes.Equal(pkt, want) {
		t.Error("partial checksum not restored")
	}
	b := make([]byte, VirtioNetHdrLen)
	h.encode(b)
	if decodeVirtio(b) != h {
		t.Error("encode/decode")
	}
}

// FuzzReceiveGSO feeds FrameGSO frames with arbitrary headers and packets
// to the receive loop of a plain and an offload device: no panic, and
// only packets from the sender's address with valid checksums (plain)
// reach the device.
func FuzzReceiveGSO(f *testing.F) {
	f.Add(uint8(gsoTCPv4), uint16(1368), ipv4test.TCP(gsoSrc, gsoDst, 1, 9, 0x10, 12, randomBytes(5000), true))
	f.Add(uint8(gsoUDPL4), uint16(1000), ipv4test.UDP(gsoSrc, gsoDst, 1, randomBytes(3000), true))
	f.Add(uint8(gsoTCPv4), uint16(1), ipv4test.TCP(gsoSrc, gsoDst, 1, 9, 0x10, 0, randomBytes(500), true))
	f.Fuzz(func(t *testing.T, typ uint8, size uint16, pkt []byte) {
		if len(pkt) > maxFrameLen {
			return
		}
		frame := make([]byte, gsoHeaderLen+len(pkt))
		putGSOHeader(frame, typ, int(size), len(pkt))
		copy(frame[gsoHeaderLen:], pkt)
		dev := &checkDev{t: t, src: gsoSrc, sums: true}
		e, _ := staticEngine(dev, Options{QueueLen: 4})
		defer e.Close()
		_ = e.receive("a", readerStream{bytes.NewReader(frame)}, "")
	})
}
