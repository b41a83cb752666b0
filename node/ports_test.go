package node

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// freePort finds a port free on 127.0.0.1 for both TCP and UDP.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

func newTestNode(t *testing.T, port int) (*Node, error) {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := New(context.Background(), Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Port: port})
	if err == nil {
		t.Cleanup(func() { n.Close() })
	}
	return n, err
}

// reuseportListen holds a TCP listener with SO_REUSEPORT, as libp2p's TCP
// transport (another cbnode) does.
func reuseportListen(t *testing.T, port int) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

func TestSecondNodeOnSamePortFails(t *testing.T) {
	want := func(t *testing.T, err error, proto string, port int) {
		t.Helper()
		msg := fmt.Sprintf("another cbnode (or something else) listens on %s 127.0.0.1:%d: stop it or give --port", proto, port)
		if err == nil {
			t.Fatalf("a second node started on %s port %d already in use (inbound connections would be split between two identities)", proto, port)
		}
		if err.Error() != msg {
			t.Fatalf("error %q, want %q", err, msg)
		}
	}
	t.Run("another node", func(t *testing.T) {
		port := freePort(t)
		if _, err := newTestNode(t, port); err != nil {
			t.Fatal(err)
		}
		_, err := newTestNode(t, port)
		want(t, err, "TCP", port)
	})
	t.Run("TCP only, with SO_REUSEPORT", func(t *testing.T) {
		port := freePort(t)
		reuseportListen(t, port)
		_, err := newTestNode(t, port)
		want(t, err, "TCP", port)
	})
	t.Run("UDP only", func(t *testing.T) {
		port := freePort(t)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		_, err = newTestNode(t, port)
		want(t, err, "UDP", port)
	})
	t.Run("port 0 twice", func(t *testing.T) {
		for range 2 {
			if _, err := newTestNode(t, 0); err != nil {
				t.Fatalf("port 0: %v", err)
			}
		}
	})
	t.Run("port free again after Close", func(t *testing.T) {
		port := freePort(t)
		n, err := newTestNode(t, port)
		if err != nil {
			t.Fatal(err)
		}
		n.Close()
		if _, err := newTestNode(t, port); err != nil {
			t.Fatalf("the port of a closed node is refused: %v", err)
		}
	})
}
