//go:build linux

package tun

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/netlab"
)

var (
	devAddr  = netip.MustParsePrefix("10.77.0.5/24")
	peerAddr = netip.MustParseAddr("10.77.0.9") // another overlay node, "behind" the TUN
)

// openInLab opens a TUN device inside a fresh namespace of a new lab; the
// namespace running the test is never touched.
func openInLab(t testing.TB, name string, mtu int) (*netlab.Host, *Device) {
	t.Helper()
	lab := netlab.NewT(t, "cbtun")
	h, err := lab.Host("h")
	if err != nil {
		t.Fatal(err)
	}
	var d *Device
	err = h.Exec(func() (err error) {
		d, err = Open(name, mtu)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the lab's cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h, d
}

func run(t testing.TB, h *netlab.Host, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// echoRequest builds an IPv4 ICMP echo request.
func echoRequest(src, dst netip.Addr, id, seq uint16, payload []byte) []byte {
	pkt := make([]byte, 20+8+len(payload))
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	binary.BigEndian.PutUint16(pkt[4:], seq)
	binary.BigEndian.PutUint16(pkt[6:], 0x4000) // DF
	pkt[8] = 64
	pkt[9] = 1 // ICMP
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20]))
	icmp := pkt[20:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	copy(icmp[8:], payload)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return pkt
}

// isEchoReply reports whether pkt is the IPv4 echo reply from src to dst
// for (id, seq) with payload.
func isEchoReply(pkt []byte, src, dst netip.Addr, id, seq uint16, payload []byte) bool {
	if len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != 1 {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+8 || checksum(pkt[:ihl]) != 0 || checksum(pkt[ihl:]) != 0 {
		return false
	}
	s, _ := netip.AddrFromSlice(pkt[12:16])
	d, _ := netip.AddrFromSlice(pkt[16:20])
	icmp := pkt[ihl:]
	return s == src && d == dst && icmp[0] == 0 && icmp[1] == 0 &&
		binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq &&
		string(icmp[8:]) == string(payload)
}

// readUntil reads packets until match accepts one or the timeout expires,
// skipping others (e.g. IPv6 router solicitations).
func readUntil(d *Device, timeout time.Duration, match func([]byte) bool) ([]byte, error) {
	if err := d.f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	defer d.f.SetReadDeadline(time.Time{})
	buf := make([]byte, d.MTU())
	for {
		n, err := readOne(d, buf)
		if err != nil {
			return nil, err
		}
		if match(buf[:n]) {
			return buf[:n], nil
		}
	}
}

func TestOpenValidation(t *testing.T) {
	for _, c := range []struct {
		name string
		mtu  int
		want string
	}{
		{"", 1400, "empty"},
		{"abcdefghijklmnop", 1400, "longer than 15"},
		{"a/b", 1400, "invalid"},
		{"cbnet0", 575, "MTU 575"},
		{"cbnet0", 65536, "MTU 65536"},
		{"cbnet0", 0, "MTU 0"},
	} {
		_, err := Open(c.name, c.mtu)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q, %d) = %v, want error containing %q", c.name, c.mtu, err, c.want)
		}
	}
}

func TestEchoThroughKernel(t *testing.T) {
	t.Parallel()
	h, d := openInLab(t, DefaultName, 1400)
	if d.Name() != DefaultName || d.MTU() != 1400 {
		t.Fatalf("Name, MTU = %q, %d", d.Name(), d.MTU())
	}
	if err := d.SetAddr(devAddr); err != nil {
		t.Fatal(err)
	}
	link := run(t, h, "ip", "-o", "link", "show", "dev", DefaultName)
	if !strings.Contains(link, "mtu 1400") || !strings.Contains(link, ",UP") {
		t.Fatalf("link: %s", link)
	}
	// The whole CLADNet prefix is routed to the device.
	if r := run(t, h, "ip", "-4", "route", "get", "10.77.0.123"); !strings.Contains(r, "dev "+DefaultName) {
		t.Fatalf("route: %s", r)
	}

	// A peer's echo request written to the device is answered by the
	// kernel, and the reply is routed back out through the device.
	payload := []byte("cbnode tun test")
	for seq := uint16(1); seq <= 3; seq++ {
		if _, err := writeOne(d, echoRequest(peerAddr, devAddr.Addr(), 0x4242, seq, payload)); err != nil {
			t.Fatal(err)
		}
		_, err := readUntil(d, 3*time.Second, func(p []byte) bool {
			return isEchoReply(p, devAddr.Addr(), peerAddr, 0x4242, seq, payload)
		})
		if err != nil {
			t.Fatalf("echo reply %d: %v", seq, err)
		}
	}

	// Traffic a local application sends to another overlay address comes
	// out of the device.
	err := h.Exec(func() error {
		c, err := net.Dial("udp4", "10.77.0.123:9999")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("to-peer"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := readUntil(d, 3*time.Second, func(p []byte) bool {
		return len(p) >= 28 && p[0] == 0x45 && p[9] == 17 && binary.BigEndian.Uint16(p[22:]) == 9999
	})
	if err != nil {
		t.Fatalf("UDP packet from the kernel: %v", err)
	}
	if src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])); src != devAddr.Addr() || dst != netip.MustParseAddr("10.77.0.123") || string(pkt[28:]) != "to-peer" {
		t.Fatalf("UDP packet %v -> %v %q", src, dst, pkt[28:])
	}
}

func TestSetAddrReplaces(t *testing.T) {
	t.Parallel()
	h, d := openInLab(t, "cbnet1", 1420)
	addrs := func() string {
		return strings.TrimSpace(run(t, h, "ip", "-4", "-o", "addr", "show", "dev", "cbnet1"))
	}
	if err := d.SetAddr(devAddr); err != nil {
		t.Fatal(err)
	}
	if a := addrs(); !strings.Contains(a, "10.77.0.5/24") {
		t.Fatalf("addresses: %s", a)
	}
	next := netip.MustParsePrefix("10.77.0.6/24")
	if err := d.SetAddr(next); err != nil {
		t.Fatal(err)
	}
	if err := d.SetAddr(next); err != nil { // idempotent
		t.Fatal(err)
	}
	a := addrs()
	if !strings.Contains(a, "10.77.0.6/24") || strings.Contains(a, "10.77.0.5") || strings.Count(a, "inet ") != 1 {
		t.Fatalf("addresses after change: %s", a)
	}
	// An IPv6 address does not replace the IPv4 one.
	if err := d.SetAddr(netip.MustParsePrefix("fd77::6/64")); err != nil {
		t.Fatal(err)
	}
	if a := addrs(); !strings.Contains(a, "10.77.0.6/24") {
		t.Fatalf("IPv4 address lost after setting IPv6: %s", a)
	}
	if err := d.SetAddr(netip.Prefix{}); err == nil {
		t.Fatal("SetAddr(invalid): want error")
	}
}

func TestCloseRemovesLink(t *testing.T) {
	t.Parallel()
	h, d := openInLab(t, "cbnet2", 1400)
	if err := d.SetAddr(devAddr); err != nil {
		t.Fatal(err)
	}
	// A second device of the same name is refused.
	err := h.Exec(func() error {
		d2, err := Open("cbnet2", 1400)
		if err == nil {
			d2.Close()
			return errors.New("second Open succeeded")
		}
		t.Logf("second Open: %v", err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 2000)
		for {
			if _, err := readOne(d, buf); err != nil {
				readErr <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil { // from a goroutine outside the namespace
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, os.ErrClosed) {
			t.Fatalf("blocked Read returned %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := h.Run(ctx, "ip", "link", "show", "dev", "cbnet2"); err == nil {
		t.Fatalf("link still exists after Close: %s", out)
	}
	if _, err := writeOne(d, echoRequest(peerAddr, devAddr.Addr(), 1, 1, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := d.SetAddr(devAddr); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetAddr after Close: %v", err)
	}
	// The name is free again.
	err = h.Exec(func() error {
		d3, err := Open("cbnet2", 1400)
		if err != nil {
			return err
		}
		return d3.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkEchoRoundTrip measures one Write of an ICMP echo request plus
// the Read of the kernel's reply: two TUN crossings and the kernel's ICMP
// processing per op.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			_, d := openInLab(b, DefaultName, 1500)
			if err := d.SetAddr(devAddr); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, size-28)
			req := echoRequest(peerAddr, devAddr.Addr(), 7, 1, payload)
			buf := make([]byte, 2048)
			b.SetBytes(int64(len(req)))
			for b.Loop() {
				if _, err := writeOne(d, req); err != nil {
					b.Fatal(err)
				}
				for {
					n, err := readOne(d, buf)
					if err != nil {
						b.Fatal(err)
					}
					if n == len(req) && buf[9] == 1 && buf[20] == 0 {
						break
					}
				}
			}
		})
	}
}

// readOne reads one packet with the batch Read of a device without offloads.
func readOne(d *Device, buf []byte) (int, error) {
	sizes := []int{0}
	if _, err := d.Read([][]byte{buf}, sizes, 0); err != nil {
		return 0, err
	}
	return sizes[0], nil
}

// writeOne writes one packet with the batch Write of a device without offloads.
func writeOne(d *Device, pkt []byte) (int, error) {
	if _, err := d.Write([][]byte{pkt}, 0); err != nil {
		return 0, err
	}
	return len(pkt), nil
}
