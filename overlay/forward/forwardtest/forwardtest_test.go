package forwardtest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

var (
	_ forward.Device = (*forwardtest.Device)(nil)
	_ forward.Dialer = (*forwardtest.Dialer)(nil)
	_ forward.Stream = (*forwardtest.Stream)(nil)
)

func TestPacket(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	p := forwardtest.IPv4Packet(src, dst, 100, 42)
	if len(p) != 100 || p[0] != 0x45 || int(p[2])<<8|int(p[3]) != 100 {
		t.Fatalf("header % x", p[:20])
	}
	if forwardtest.Src(p) != src || forwardtest.Dst(p) != dst || forwardtest.Seq(p) != 42 {
		t.Fatalf("src %s dst %s seq %d", forwardtest.Src(p), forwardtest.Dst(p), forwardtest.Seq(p))
	}
	if p := forwardtest.IPv4Packet(src, dst, 0, 7); len(p) != 24 || forwardtest.Seq(p) != 7 {
		t.Fatalf("minimum packet: % x", p)
	}
}

func TestDevice(t *testing.T) {
	d := forwardtest.NewDevice("fake0", 1280)
	if d.Name() != "fake0" || d.MTU() != 1280 || d.Addr().IsValid() || d.Closed() {
		t.Fatal("fresh device")
	}
	pfx := netip.MustParsePrefix("10.99.0.1/16")
	if err := d.SetAddr(pfx); err != nil || d.Addr() != pfx {
		t.Fatalf("SetAddr: %v, Addr %s", err, d.Addr())
	}

	// Inject -> Read (send path).
	if err := d.Inject([]byte{1, 2, 3}, time.Second); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	sizes := []int{0, 0}
	if n, err := d.Read([][]byte{buf, make([]byte, 10)}, sizes, 0); err != nil || n != 1 || string(buf[:sizes[0]]) != "\x01\x02\x03" {
		t.Fatalf("Read = %d, %v", n, err)
	}

	// Write -> Recv (receive path), copying the buffer.
	pkt := []byte{4, 5}
	if _, err := d.Write([][]byte{pkt}, 0); err != nil {
		t.Fatal(err)
	}
	pkt[0] = 9
	if got, err := d.Recv(time.Second); err != nil || string(got) != "\x04\x05" {
		t.Fatalf("Recv = % x, %v", got, err)
	}
	if d.Writes() != 1 {
		t.Fatalf("Writes = %d", d.Writes())
	}
	if _, err := d.Recv(5 * time.Millisecond); !errors.Is(err, forwardtest.ErrTimeout) {
		t.Fatalf("Recv on empty device: %v", err)
	}
	if err := d.ExpectNone(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	d.Write([][]byte{{6}}, 0)
	if err := d.ExpectNone(5 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "06") {
		t.Fatalf("ExpectNone with a packet pending: %v", err)
	}

	// Channels.
	d.Input() <- []byte{7}
	if n, _ := d.Read([][]byte{buf}, sizes, 0); n != 1 || sizes[0] != 1 || buf[0] != 7 {
		t.Fatal("Input")
	}
	d.Write([][]byte{{8}}, 0)
	if p := <-d.Output(); p[0] != 8 {
		t.Fatal("Output")
	}

	// A full input times out.
	for len(d.Input()) < cap(d.Input()) {
		d.Input() <- nil
	}
	if err := d.Inject(nil, 5*time.Millisecond); err == nil {
		t.Fatal("Inject into a full device succeeded")
	}

	// Close unblocks and is idempotent.
	done := make(chan error)
	go func() {
		for {
			if _, err := d.Read([][]byte{buf}, []int{0}, 0); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) || !d.Closed() {
		t.Fatalf("Read after Close: %v", err)
	}
	// After Close, Read and Write fail at once, even with room to write or
	// a packet waiting to be read.
	select {
	case d.Input() <- []byte{1}:
	default: // still full from above
	}
	for range 100 {
		if _, err := d.Write([][]byte{{1}}, 0); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write to a closed device: %v", err)
		}
	}
	if _, err := d.Read([][]byte{buf}, []int{0}, 0); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed device: %v", err)
	}
	if err := d.SetAddr(pfx); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetAddr after Close: %v", err)
	}
}

// sink is a Handler that reads each stream to the end.
type sink struct {
	mu    sync.Mutex
	from  []peer.ID
	paths []forward.PathInfo
	data  chan []byte
}

func (s *sink) HandleStream(from peer.ID, st forward.Stream, path forward.PathInfo) {
	s.mu.Lock()
	s.from, s.paths = append(s.from, from), append(s.paths, path)
	s.mu.Unlock()
	b, _ := io.ReadAll(st)
	s.data <- b
}

func TestNet(t *testing.T) {
	baseline := runtime.NumGoroutine()
	n := forwardtest.NewNet()
	b := &sink{data: make(chan []byte, 10)}
	n.Add("b", b)
	d := n.Dialer("a")
	ctx := context.Background()

	if _, _, err := d.OpenStream(ctx, "nobody"); err == nil {
		t.Fatal("dial to an unknown peer succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := d.OpenStream(cctx, "b"); err == nil {
		t.Fatal("dial with a cancelled context succeeded")
	}
	d.SetFail(true)
	if _, _, err := d.OpenStream(ctx, "b"); !errors.Is(err, forwardtest.ErrDialRefused) {
		t.Fatalf("dial while failing: %v", err)
	}
	d.SetFail(false)
	if d.Opened() != 0 || d.Last() != nil || d.LastTo("b") != nil {
		t.Fatal("failed dials counted")
	}

	s1, p1, err := d.OpenStream(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	s2, p2, _ := d.OpenStream(ctx, "b")
	if p1.Transport != "memory" || p1.Remote == p2.Remote || d.Opened() != 2 {
		t.Fatalf("paths %+v %+v, opened %d", p1, p2, d.Opened())
	}
	if d.Last() != s2 || d.LastTo("b") != s2 || d.LastTo("a") != nil || d.Last().Peer() != "b" {
		t.Fatal("Last/LastTo")
	}
	if _, err := s1.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	s2.Close()
	if got := string(<-b.data) + string(<-b.data); got != "hello" { // one stream is empty
		t.Fatalf("received %q", got)
	}
	if d.Last().Writes() != 0 || s1.(*forwardtest.Stream).Writes() != 1 {
		t.Fatal("Writes")
	}
	b.mu.Lock()
	if len(b.from) != 2 || b.from[0] != "a" || b.from[1] != "a" ||
		!(b.paths[0] == p1 && b.paths[1] == p2 || b.paths[0] == p2 && b.paths[1] == p1) {
		t.Fatalf("handler saw %v %v", b.from, b.paths)
	}
	b.mu.Unlock()

	n.Remove("b")
	if _, _, err := d.OpenStream(ctx, "b"); err == nil {
		t.Fatal("dial to a removed peer succeeded")
	}
	n.Wait()
	forwardtest.WaitGoroutines(t, baseline)
}

func TestGate(t *testing.T) {
	n := forwardtest.NewNet()
	b := &sink{data: make(chan []byte, 10)}
	n.Add("b", b)
	d := n.Dialer("a")
	ctx := context.Background()

	open, _, _ := d.OpenStream(ctx, "b") // ungated: opened before SetGated
	d.SetGated(true)
	gated, _, _ := d.OpenStream(ctx, "b")
	stuck, _, _ := d.OpenStream(ctx, "b")
	defer open.Close()

	wrote := make(chan error, 1)
	go func() { _, err := gated.Write([]byte("late")); wrote <- err }()
	<-d.Entered()
	select {
	case err := <-wrote:
		t.Fatalf("gated Write returned before Release: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	if _, err := open.Write([]byte("x")); err != nil {
		t.Fatalf("ungated stream: %v", err)
	}

	// Close unblocks a write waiting at the gate.
	closed := make(chan error, 1)
	go func() { _, err := stuck.Write([]byte("never")); closed <- err }()
	<-d.Entered()
	stuck.Close()
	if err := <-closed; err == nil {
		t.Fatal("Write on a closed gated stream succeeded")
	}

	d.Release()
	d.Release() // idempotent
	if err := <-wrote; err != nil {
		t.Fatalf("gated Write after Release: %v", err)
	}
	gated.Close()
	open.Close()
	got := map[string]bool{}
	for range 3 {
		got[string(<-b.data)] = true
	}
	if !got["late"] || !got["x"] || !got[""] {
		t.Fatalf("received %v", got)
	}
	n.Wait()
}

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                         {}
func (r *recorder) Fatalf(f string, args ...any)    { r.failed = f }
func (r *recorder) Errorf(f string, args ...any)    { r.failed = f }
func (r *recorder) Fatal(args ...any)               { r.failed = "fatal" }
func (r *recorder) Logf(format string, args ...any) {}

func TestEventually(t *testing.T) {
	k := 0
	forwardtest.Eventually(t, time.Second, "k reaches 3", func() bool { k++; return k >= 3 })
	r := &recorder{TB: t}
	forwardtest.Eventually(r, 10*time.Millisecond, "never", func() bool { return false })
	if !strings.Contains(r.failed, "timed out") {
		t.Fatalf("Eventually on a false condition: %q", r.failed)
	}
}

func TestWaitGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	stop := make(chan struct{})
	go func() { <-stop }()
	go func() { time.Sleep(20 * time.Millisecond); close(stop) }()
	forwardtest.WaitGoroutines(t, baseline) // both end in time

	if testing.Short() {
		t.Skip("the leak case waits 5 s")
	}
	// Baseline 0 is a certain leak: this goroutine alone exceeds it.
	r := &recorder{TB: t}
	forwardtest.WaitGoroutines(r, 0)
	if !strings.Contains(r.failed, "goroutine leak") {
		t.Fatalf("WaitGoroutines with a leak: %q", r.failed)
	}
}
