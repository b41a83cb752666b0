package forward_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

// Tests of the batch-shaped device seam and of super-packets (TUN
// offloads) on the in-memory device.

// TestBatchedDeviceReads: packets already waiting are read in batches of
// BatchSize and all delivered in order.
func TestBatchedDeviceReads(t *testing.T) {
	devs := []*forwardtest.Device{
		forwardtest.NewDevice("a", 1400, forwardtest.WithBatch(16)),
		forwardtest.NewDevice("b", 1400),
	}
	src, dst := ipAt(1), ipAt(2)
	for i := range 64 {
		if err := devs[0].Inject(ipv4Packet(src, dst, 200, uint32(i)), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ := newMeshWith(t, devs, forward.Options{})
	b := nodes[1]
	for i := range 64 {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("packet %d has seq %d", i, pktSeq(p))
		}
	}
	if r := devs[0].Reads(); r != 4 {
		t.Errorf("64 waiting packets took %d reads, want 4 of 16", r)
	}
}

// TestBatchedDeviceWrites: frames that arrive together go to the device
// in one Write.
func TestBatchedDeviceWrites(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	conn, _ := rawPeer(t, b.e, a.id)
	var burst []byte
	for i := range 10 {
		burst = append(burst, frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 300, uint32(i)))...)
	}
	if _, err := conn.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("packet %d has seq %d", i, pktSeq(p))
		}
	}
	if c := b.dev.WriteCalls(); c != 1 {
		t.Errorf("10 frames in one stream write reached the device in %d writes, want 1", c)
	}
	if st := mustStats(t, b.e, a.id); st.RxPackets != 10 {
		t.Errorf("rxPackets %d", st.RxPackets)
	}
}

// TestPartialDeviceWrite: when the device takes only part of a batch, the
// rest is counted as device_error, nothing is delivered twice, and the
// stream carries on.
func TestPartialDeviceWrite(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	conn, _ := rawPeer(t, b.e, a.id)
	b.dev.FailWritesAfter(3)
	var burst []byte
	for i := range 10 {
		burst = append(burst, frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 300, uint32(i)))...)
	}
	if _, err := conn.Write(burst); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("packet %d has seq %d", i, pktSeq(p))
		}
	}
	eventually(t, 2*time.Second, "device_error drops", func() bool {
		return mustStats(t, b.e, a.id).Drops["device_error"] == 7
	})
	if st := mustStats(t, b.e, a.id); st.RxPackets != 3 {
		t.Errorf("rxPackets %d, want 3", st.RxPackets)
	}
	b.dev.expectNone(t, 20*time.Millisecond)
	b.dev.FailWritesAfter(-1)
	if _, err := conn.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 300, 99))); err != nil {
		t.Fatal(err)
	}
	if p := b.dev.recv(t); pktSeq(p) != 99 {
		t.Fatalf("after the fault: seq %d", pktSeq(p))
	}
}

// superPacket is a TCP super-packet as a TUN with offloads hands it over:
// partial checksum, virtio-net header asking for segmentation at mss.
func superPacket(a, b *node, payload []byte, mss int) (forwardtest.Virtio, []byte) {
	pkt := forwardtest.TCPPacket(a.ip, b.ip, 10, 1000, 0x18, 12, payload, true)
	return forwardtest.Virtio{
		Flags: forwardtest.VirtioNeedsCsum, GSOType: forwardtest.GSOTCPv4,
		HdrLen: 52, GSOSize: uint16(mss), CsumStart: 20, CsumOffset: 16,
	}, pkt
}

// TestSuperPacketOffloadToOffload: a super-packet read from an offload
// device crosses as one frame and is written whole, with a virtio-net
// header asking the kernel to segment it.
func TestSuperPacketOffloadToOffload(t *testing.T) {
	devs := []*forwardtest.Device{
		forwardtest.NewDevice("a", 1400, forwardtest.WithOffload()),
		forwardtest.NewDevice("b", 1400, forwardtest.WithOffload()),
	}
	nodes, _ := newMeshWith(t, devs, forward.Options{})
	a, b := nodes[0], nodes[1]
	payload := randomPayload(60000)
	h, pkt := superPacket(a, b, payload, 1348)
	if err := devs[0].InjectWithHeader(h, pkt, time.Second); err != nil {
		t.Fatal(err)
	}
	got, gotPkt, err := devs[1].RecvWithHeader(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Errorf("virtio-net header %+v, want %+v", got, h)
	}
	if !bytes.Equal(gotPkt, pkt) {
		t.Error("super-packet changed on the way")
	}
	eventually(t, 2*time.Second, "counters", func() bool {
		tx, rx := mustStats(t, a.e, b.id), mustStats(t, b.e, a.id)
		return tx.TxGSO == 1 && tx.TxPackets == 1 && rx.RxGSO == 1 && rx.RxPackets == 1
	})
	// A plain packet the other way arrives with an all-zero header.
	b.dev.inject(t, ipv4Packet(b.ip, a.ip, 100, 5))
	got, gotPkt, err = devs[0].RecvWithHeader(5 * time.Second)
	if err != nil || got != (forwardtest.Virtio{}) || pktSeq(gotPkt) != 5 {
		t.Fatalf("plain packet: header %+v, %v", got, err)
	}
}

// TestSuperPacketToPlainDevice: the mixed pair. A receiver without
// offloads segments super-packets in software into MTU-sized packets with
// valid checksums; a plain sender's packets reach an offload device.
func TestSuperPacketToPlainDevice(t *testing.T) {
	devs := []*forwardtest.Device{
		forwardtest.NewDevice("a", 1400, forwardtest.WithOffload()),
		forwardtest.NewDevice("b", 1400),
	}
	nodes, _ := newMeshWith(t, devs, forward.Options{})
	a, b := nodes[0], nodes[1]
	payload := randomPayload(30000)
	h, pkt := superPacket(a, b, payload, 1348)
	if err := devs[0].InjectWithHeader(h, pkt, time.Second); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := range (len(payload) + 1347) / 1348 {
		s := b.dev.recv(t)
		if !forwardtest.ValidChecksums(s) || len(s) > 1400 {
			t.Fatalf("segment %d: %d bytes, checksums valid %v", i, len(s), forwardtest.ValidChecksums(s))
		}
		if seq := binary.BigEndian.Uint32(s[24:]); seq != 1000+uint32(len(got)) {
			t.Fatalf("segment %d: seq %d", i, seq)
		}
		got = append(got, s[52:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("segments do not add up to the payload")
	}
	b.dev.expectNone(t, 20*time.Millisecond)

	// A plain packet with a partial checksum (offload sender) is completed
	// before it leaves.
	udp := forwardtest.UDPPacket(a.ip, b.ip, 3, randomPayload(500), true)
	if err := devs[0].InjectWithHeader(forwardtest.Virtio{Flags: forwardtest.VirtioNeedsCsum, CsumStart: 20, CsumOffset: 6}, udp, time.Second); err != nil {
		t.Fatal(err)
	}
	if s := b.dev.recv(t); !forwardtest.ValidChecksums(s) {
		t.Error("partial checksum not completed by the sender")
	}

	// Plain packets from b reach a's offload device.
	b.dev.inject(t, ipv4Packet(b.ip, a.ip, 100, 8))
	if hdr, p, err := devs[0].RecvWithHeader(5 * time.Second); err != nil || hdr != (forwardtest.Virtio{}) || pktSeq(p) != 8 {
		t.Fatalf("plain packet to the offload device: %+v, %v", hdr, err)
	}
}

// TestSpoofedSuperPacketDropped: the anti-spoofing check holds for
// super-packets (their inner IPv4 source), on both kinds of receiver; a
// malformed super-packet is dropped as bad_header.
func TestSpoofedSuperPacketDropped(t *testing.T) {
	for _, offload := range []bool{false, true} {
		var opts []forwardtest.DeviceOption
		if offload {
			opts = append(opts, forwardtest.WithOffload())
		}
		devs := []*forwardtest.Device{
			forwardtest.NewDevice("a", 1400), forwardtest.NewDevice("b", 1400, opts...), forwardtest.NewDevice("c", 1400),
		}
		nodes, _ := newMeshWith(t, devs, forward.Options{})
		a, b, c := nodes[0], nodes[1], nodes[2]
		conn, _ := rawPeer(t, b.e, a.id)
		_, spoofed := superPacket(c, b, randomPayload(20000), 1348) // c's source on a's stream
		if _, err := conn.Write(forward.GSOFrameBytes(1, 1348, spoofed)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "spoofed drop", func() bool { return mustStats(t, b.e, a.id).Drops["spoofed"] == 1 })
		_, bad := superPacket(a, b, randomPayload(20000), 1348)
		if _, err := conn.Write(forward.GSOFrameBytes(1, 0, bad)); err != nil { // segment size 0
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "bad_header drop", func() bool { return mustStats(t, b.e, a.id).Drops["bad_header"] == 1 })
		b.dev.expectNone(t, 20*time.Millisecond)
		// The stream is still in sync: a good one gets through.
		_, good := superPacket(a, b, randomPayload(2000), 1348)
		if _, err := conn.Write(forward.GSOFrameBytes(1, 1348, good)); err != nil {
			t.Fatal(err)
		}
		b.dev.recv(t)
	}
}

// ipAt is the overlay address newMesh gives node i (1-based).
func ipAt(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 99, 0, byte(i)}) }

// randomPayload returns n pseudo-random bytes.
func randomPayload(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSuperPacketToLegacyPeer: on a stream that negotiated the previous
// protocol (no FrameGSO), the sender cuts super-packets into plain data
// frames itself.
func TestSuperPacketToLegacyPeer(t *testing.T) {
	devs := []*forwardtest.Device{
		forwardtest.NewDevice("a", 1400, forwardtest.WithOffload()),
		forwardtest.NewDevice("b", 1400),
	}
	// a's streams speak the old protocol from the first one on.
	nodes, _ := newMeshWith(t, devs, forward.Options{}, func(i int, d *forwardtest.Dialer) {
		if i == 0 {
			d.SetProtocol(forward.LegacyProtocolID)
		}
	})
	a, b := nodes[0], nodes[1]
	payload := randomPayload(20000)
	h, pkt := superPacket(a, b, payload, 1348)
	if err := devs[0].InjectWithHeader(h, pkt, time.Second); err != nil {
		t.Fatal(err)
	}
	nseg := (len(payload) + 1347) / 1348
	var got []byte
	for range nseg {
		s := b.dev.recv(t)
		if !forwardtest.ValidChecksums(s) {
			t.Fatal("segment with bad checksums")
		}
		got = append(got, s[52:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("segments do not add up to the payload")
	}
	eventually(t, 2*time.Second, "counters", func() bool {
		tx, rx := mustStats(t, a.e, b.id), mustStats(t, b.e, a.id)
		return tx.TxGSO == 0 && tx.TxPackets == uint64(nseg) && rx.RxGSO == 0 && rx.RxPackets == uint64(nseg)
	})
}

// TestSuperPacketWriteFailure: when the in-place write of a super-packet
// fails with more queued behind it, nothing crashes and every queued
// super-packet reaches the peer on the next stream.
func TestSuperPacketWriteFailure(t *testing.T) {
	devs := []*forwardtest.Device{
		forwardtest.NewDevice("a", 1400, forwardtest.WithOffload()),
		forwardtest.NewDevice("b", 1400, forwardtest.WithOffload()),
	}
	nodes, _ := newMeshWith(t, devs, forward.Options{MinBackoff: 10 * time.Millisecond}, func(i int, d *forwardtest.Dialer) {
		if i == 0 {
			d.SetGated(true) // a's first stream: writes block until it is closed
		}
	})
	a, b := nodes[0], nodes[1]
	for i := range 3 {
		h, pkt := superPacket(a, b, randomPayload(30000+i), 1348)
		if err := devs[0].InjectWithHeader(h, pkt, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-a.dialer.Entered():
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never wrote")
	}
	eventually(t, 2*time.Second, "all queued", func() bool { return devs[0].Reads() >= 1 && len(devs[0].Input()) == 0 })
	time.Sleep(20 * time.Millisecond) // let the reader queue them behind the blocked write
	a.dialer.SetGated(false)
	a.dialer.Last().Close() // the blocked write fails
	for i := range 3 {
		_, p, err := devs[1].RecvWithHeader(5 * time.Second)
		if err != nil {
			t.Fatalf("super-packet %d: %v", i, err)
		}
		if len(p) != 52+30000+i {
			t.Errorf("super-packet %d: %d bytes", i, len(p))
		}
	}
	eventually(t, 2*time.Second, "reconnect counted", func() bool { return mustStats(t, a.e, b.id).Reconnects >= 1 })
}
