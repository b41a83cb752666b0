package forward_test

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

// benchWindow is how many packets the benchmark source keeps in flight
// (below the default queue length, so nothing is dropped).
const (
	benchWindow = 512
	creditChunk = 64
	benchSize   = 1400
)

// creditLink paces a benchmark source by its sink, like a congestion-
// controlled sender: the source may run benchWindow packets ahead.
type creditLink struct {
	credits chan int
	closed  chan struct{}
}

func newCreditLink() *creditLink {
	l := &creditLink{credits: make(chan int, benchWindow), closed: make(chan struct{})}
	l.credits <- benchWindow
	return l
}

// benchSource is a Device whose Read yields copies of one packet as fast
// as credits allow, without allocating.
type benchSource struct {
	link  *creditLink
	pkt   []byte
	avail int
}

func (s *benchSource) MTU() int       { return benchSize }
func (s *benchSource) BatchSize() int { return 16 }
func (s *benchSource) Write(bufs [][]byte, _ int) (int, error) {
	return len(bufs), nil // keepalives only
}
func (s *benchSource) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for s.avail == 0 {
		select {
		case n := <-s.link.credits:
			s.avail += n
		case <-s.link.closed:
			return 0, net.ErrClosed
		}
	}
	n := min(s.avail, len(bufs))
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], s.pkt)
	}
	s.avail -= n
	return n, nil
}

// benchSink is a Device counting delivered packets and returning credits.
type benchSink struct {
	link   *creditLink
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (s *benchSink) MTU() int       { return benchSize }
func (s *benchSink) BatchSize() int { return 16 }
func (s *benchSink) Read([][]byte, []int, int) (int, error) {
	<-s.link.closed
	return 0, net.ErrClosed
}
func (s *benchSink) Write(bufs [][]byte, _ int) (int, error) {
	for range bufs {
		n := s.n.Add(1)
		if n%creditChunk == 0 {
			s.link.credits <- creditChunk
		}
		if n == s.target {
			close(s.done)
		}
	}
	return len(bufs), nil
}

// runTimed starts the engines (each Run's result goes to runs) and times
// the benchmark until done is closed.
func runTimed(b *testing.B, done <-chan struct{}, runs chan<- error, engines ...*forward.Engine) {
	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for _, e := range engines {
		go func() { runs <- e.Run(context.Background()) }()
	}
	<-done
	b.StopTimer()
}

// reportBatching reports e's packets per stream write to p and returns
// p's stats.
func reportBatching(b *testing.B, e *forward.Engine, p peer.ID) forward.PeerStats {
	st, _ := e.Stats(p)
	if st.TxWrites > 0 {
		b.ReportMetric(float64(st.TxPackets)/float64(st.TxWrites), "pkts/write")
	}
	return st
}

// BenchmarkForward measures one 1400-byte packet end to end: device read
// on A, routing, queue, batched write over an in-memory pipe, framing and
// validation on B, device write on B.
func BenchmarkForward(b *testing.B) {
	ipA, ipB := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	link := newCreditLink()
	src := &benchSource{link: link, pkt: forwardtest.IPv4Packet(ipA, ipB, benchSize, 0)}
	sink := &benchSink{link: link, target: int64(b.N), done: make(chan struct{})}

	fn := forwardtest.NewNet()
	ea := forward.New(src, fn.Dialer("A"), forward.Options{})
	eb := forward.New(sink, fn.Dialer("B"), forward.Options{})
	fn.Add("A", ea)
	fn.Add("B", eb)
	ea.SetLocal(ipA)
	eb.SetLocal(ipB)
	ea.SetRoutes(map[netip.Addr]peer.ID{ipB: "B"})
	eb.SetRoutes(map[netip.Addr]peer.ID{ipA: "A"})
	runs := make(chan error, 2)

	runTimed(b, sink.done, runs, ea, eb)

	st := reportBatching(b, ea, "B")
	if len(st.Drops) != 0 {
		b.Fatalf("drops: %v", st.Drops)
	}
	ea.Close()
	eb.Close()
	close(link.closed)
	<-runs
	<-runs
	fn.Wait()
}

// countingStream is a Stream that discards writes and returns one credit
// per frame written.
type countingStream struct {
	link      *creditLink
	frameSize int
	frames    atomic.Int64
	target    int64
	done      chan struct{}
	closed    chan struct{}
}

func (s *countingStream) Read([]byte) (int, error) { <-s.closed; return 0, net.ErrClosed }
func (s *countingStream) Close() error             { return nil }
func (s *countingStream) Write(b []byte) (int, error) {
	k := int64(len(b) / s.frameSize)
	if k > 0 {
		s.link.credits <- int(k)
		if n := s.frames.Add(k); n >= s.target && n-k < s.target {
			close(s.done)
		}
	}
	return len(b), nil
}

type streamDialer struct{ s forward.Stream }

func (d streamDialer) OpenStream(context.Context, peer.ID) (forward.Stream, forward.PathInfo, error) {
	return d.s, forward.PathInfo{Transport: "bench"}, nil
}

// BenchmarkSendPath measures the send half alone: device read, lookup,
// queue, coalescing writer; the stream discards the batches.
func BenchmarkSendPath(b *testing.B) {
	ipA, ipB := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	link := newCreditLink()
	src := &benchSource{link: link, pkt: forwardtest.IPv4Packet(ipA, ipB, benchSize, 0)}
	cs := &countingStream{link: link, frameSize: forward.HeaderLen + benchSize, target: int64(b.N),
		done: make(chan struct{}), closed: make(chan struct{})}
	e := forward.New(src, streamDialer{cs}, forward.Options{})
	e.SetLocal(ipA)
	e.SetRoutes(map[netip.Addr]peer.ID{ipB: "B"})
	run := make(chan error, 1)

	runTimed(b, cs.done, run, e)

	reportBatching(b, e, "B")
	e.Close()
	close(link.closed)
	close(cs.closed)
	<-run
}
