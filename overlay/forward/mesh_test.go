package forward_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

// Short names for the forwardtest helpers the engine tests use everywhere.
var (
	ipv4Packet = forwardtest.IPv4Packet
	ipv4Src    = forwardtest.Src
	ipv4Dst    = forwardtest.Dst
	pktSeq     = forwardtest.Seq
	eventually = forwardtest.Eventually
	frameBytes = forward.FrameBytes
)

// testDev is a forwardtest.Device whose helpers fail the test.
type testDev struct{ *forwardtest.Device }

func newTestDev(mtu int) testDev { return testDev{forwardtest.NewDevice("fake0", mtu)} }

// inject queues a packet as if a local application had sent it.
func (d testDev) inject(t testing.TB, pkt []byte) {
	t.Helper()
	if err := d.Inject(pkt, 5*time.Second); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

// recv waits for one delivered packet.
func (d testDev) recv(t testing.TB) []byte {
	t.Helper()
	p, err := d.Recv(5 * time.Second)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return p
}

// expectNone asserts that nothing is delivered for a short while.
func (d testDev) expectNone(t testing.TB, wait time.Duration) {
	t.Helper()
	if err := d.ExpectNone(wait); err != nil {
		t.Fatal(err)
	}
}

type node struct {
	id     peer.ID
	ip     netip.Addr
	dev    testDev
	dialer *forwardtest.Dialer
	e      *forward.Engine
	runErr chan error
}

// newMesh builds n engines on one forwardtest.Net, each with routes to all
// others, running, and torn down (with a goroutine leak check) at test end.
func newMesh(t testing.TB, n int, opts forward.Options) ([]*node, *forwardtest.Net) {
	t.Helper()
	devs := make([]*forwardtest.Device, n)
	for i := range devs {
		devs[i] = forwardtest.NewDevice("fake0", 1400)
	}
	return newMeshWith(t, devs, opts)
}

// newMeshWith is newMesh on the given devices, one engine each; setup,
// if given, prepares each node's dialer before its engine starts.
func newMeshWith(t testing.TB, devs []*forwardtest.Device, opts forward.Options, setup ...func(i int, d *forwardtest.Dialer)) ([]*node, *forwardtest.Net) {
	t.Helper()
	return newMeshOpts(t, devs, func(int) forward.Options { return opts }, setup...)
}

// newMeshOpts is newMeshWith with per-node options (node i gets optsFor(i)).
func newMeshOpts(t testing.TB, devs []*forwardtest.Device, optsFor func(i int) forward.Options, setup ...func(i int, d *forwardtest.Dialer)) ([]*node, *forwardtest.Net) {
	t.Helper()
	n := len(devs)
	baseline := runtime.NumGoroutine()
	fn := forwardtest.NewNet()
	nodes := make([]*node, n)
	for i := range nodes {
		id := peer.ID(fmt.Sprintf("peer-%c", 'A'+i))
		nd := &node{
			id:     id,
			ip:     netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 1)}),
			dev:    testDev{devs[i]},
			runErr: make(chan error, 1),
		}
		nd.dialer = fn.Dialer(id)
		for _, f := range setup {
			f(i, nd.dialer)
		}
		nd.e = forward.New(nd.dev, nd.dialer, optsFor(i))
		nd.e.SetLocal(nd.ip)
		fn.Add(id, nd.e)
		nodes[i] = nd
	}
	for _, nd := range nodes {
		routes := map[netip.Addr]peer.ID{}
		for _, o := range nodes {
			if o != nd {
				routes[o.ip] = o.id
			}
		}
		nd.e.SetRoutes(routes)
		go func(nd *node) { nd.runErr <- nd.e.Run(context.Background()) }(nd)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.e.Close()
			nd.dev.Close()
		}
		for _, nd := range nodes {
			select {
			case err := <-nd.runErr:
				if err != nil {
					t.Errorf("Run(%s): %v", nd.id, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run(%s) did not return", nd.id)
			}
		}
		fn.Wait()
		forwardtest.WaitGoroutines(t, baseline)
	})
	return nodes, fn
}

func mustStats(t testing.TB, e *forward.Engine, p peer.ID) forward.PeerStats {
	t.Helper()
	s, ok := e.Stats(p)
	if !ok {
		t.Fatalf("no stats for %s", p)
	}
	return s
}
