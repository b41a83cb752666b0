package overlay

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// statConn is a network.Conn with only what spareRelayed reads.
type statConn struct {
	network.Conn
	remote ma.Multiaddr
	opened time.Time
}

func (c statConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }
func (c statConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Opened: c.opened}}
}
func (c statConn) ConnState() network.ConnectionState { return network.ConnectionState{} }
func (c statConn) ID() string                         { return "c" }

func TestSpareRelayed(t *testing.T) {
	now := time.Now()
	circuit := ma.StringCast("/ip4/7.7.7.1/tcp/7460/p2p/12D3KooWBP7bYBzWgeY3qk8bpYgiMSDhoifVPevrNXzuHUDHnpK3/p2p-circuit")
	direct := ma.StringCast("/ip4/7.7.7.21/tcp/7460")
	old, fresh := now.Add(-relayedGrace-time.Second), now.Add(-time.Second)
	for _, tc := range []struct {
		name  string
		conns []network.Conn
		want  bool
	}{
		{"none", nil, false},
		{"one old relayed", []network.Conn{statConn{remote: circuit, opened: old}}, true},
		{"two old relayed", []network.Conn{statConn{remote: circuit, opened: old}, statConn{remote: circuit, opened: old}}, true},
		{"a fresh relayed one: a tunnel's dial may be under way", []network.Conn{statConn{remote: circuit, opened: old}, statConn{remote: circuit, opened: fresh}}, false},
		{"a direct one beside", []network.Conn{statConn{remote: circuit, opened: old}, statConn{remote: direct, opened: old}}, false},
		{"direct only", []network.Conn{statConn{remote: direct, opened: old}}, false},
	} {
		if got := spareRelayed(tc.conns, now); got != tc.want {
			t.Errorf("%s: spareRelayed %v, want %v", tc.name, got, tc.want)
		}
	}
}
