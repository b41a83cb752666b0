package forward_test

import (
	"context"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// blackholeDialer opens streams on "connection" out whose writes vanish (a
// connection dead in one direction), and records CheckConn calls.
type blackholeDialer struct {
	out     string
	mu      sync.Mutex
	checked []string
}

type blackhole struct{ closed chan struct{} }

func (b *blackhole) Read([]byte) (int, error)    { <-b.closed; return 0, io.EOF }
func (b *blackhole) Write(p []byte) (int, error) { return len(p), nil }
func (b *blackhole) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func (d *blackholeDialer) OpenStream(context.Context, peer.ID) (forward.Stream, forward.PathInfo, error) {
	return &blackhole{closed: make(chan struct{})}, forward.PathInfo{Remote: "/ip4/7.7.7.7/tcp/7460", Transport: "tcp", Conn: d.out}, nil
}

func (d *blackholeDialer) CheckConn(_ peer.ID, path forward.PathInfo) {
	d.mu.Lock()
	d.checked = append(d.checked, path.Conn)
	d.mu.Unlock()
}

func (d *blackholeDialer) calls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.checked...)
}

// TestAnswerOnAnotherConnection: the peer's frames arriving on another
// connection than the one our stream rides do not prove that our writes
// reach it; after DeadAfter the engine has its connection checked. Frames
// on the same connection are answers, and nothing is checked.
func TestAnswerOnAnotherConnection(t *testing.T) {
	for _, c := range []struct {
		name, inbound string
		wantCheck     bool
	}{
		{"answers on another connection", "c2", true},
		{"answers on the same connection", "c1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &blackholeDialer{out: "c1"}
			dev := newTestDev(1400)
			e := forward.New(dev, d, forward.Options{KeepaliveInterval: 10 * time.Millisecond})
			local, remote := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
			e.SetLocal(local)
			e.SetRoutes(map[netip.Addr]peer.ID{remote: "peer-B"})
			ctx, cancel := context.WithCancel(context.Background())
			runErr := make(chan error, 1)
			go func() { runErr <- e.Run(ctx) }()
			// The peer's stream to us: a keepalive every 5 ms.
			pr, pw := io.Pipe()
			inDone := make(chan struct{})
			go func() {
				defer close(inDone)
				e.HandleStream("peer-B", readCloser{pr}, forward.PathInfo{Conn: c.inbound})
			}()
			stop := make(chan struct{})
			fed := make(chan struct{})
			go func() {
				defer close(fed)
				ka := frameBytes(forward.FrameKeepalive, nil)
				for seq := uint32(0); ; seq++ {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if _, err := pw.Write(ka); err != nil {
						return
					}
					select {
					case dev.Input() <- ipv4Packet(local, remote, 64, seq):
					case <-stop:
						return
					}
				}
			}()
			defer func() {
				close(stop)
				pw.Close()
				<-fed
				<-inDone
				e.Close()
				dev.Close() // unblocks Run's Read
				cancel()
				<-runErr
			}()
			if c.wantCheck {
				eventually(t, 3*time.Second, "connection c1 checked", func() bool {
					calls := d.calls()
					return len(calls) > 0 && calls[0] == "c1"
				})
			} else {
				time.Sleep(300 * time.Millisecond) // 10 × DeadAfter
				if calls := d.calls(); len(calls) > 0 {
					t.Fatalf("answers on our own connection, yet %v checked", calls)
				}
				if st := mustStats(t, e, "peer-B"); st.Reconnects != 0 || !st.StreamUp {
					t.Fatalf("a path answered on its own connection was reset: %+v", st)
				}
			}
		})
	}
}

type readCloser struct{ *io.PipeReader }

func (r readCloser) Write(p []byte) (int, error) { return len(p), nil }
