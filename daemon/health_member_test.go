package daemon_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
)

// syncBuffer is a log sink safe for the member's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUnreachableBootstrap: a member whose only bootstrap node is a dead
// address says so in Status().Health within a few seconds, warns in its
// log, and does not claim to have joined; once a bootstrap node answers at
// that address, it recovers and logs the join.
func TestUnreachableBootstrap(t *testing.T) {
	l := newLab(t, cost.RuleBasic) // the CLADNet; its bootstrap node is not used
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	key, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(key)
	dead := peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))}}

	logs := &syncBuffer{}
	a := l.member("a")
	a.boot, a.log = []peer.AddrInfo{dead}, slog.New(slog.NewTextHandler(logs, nil))
	a.start()
	eventually(t, 5*time.Second, "status reports the bootstrap node unreachable", func() error {
		h := a.m.Status().Health
		if h == nil || len(h.Bootstrap) != 1 {
			return fmt.Errorf("health = %+v", h)
		}
		b := h.Bootstrap[0]
		if b.ID != id.String() || b.Connected || b.Failures < 3 || b.LastError == "" {
			return fmt.Errorf("bootstrap health = %+v", b)
		}
		if h.Verdict != api.HealthOffline || !strings.Contains(h.Reason, id.String()) {
			return fmt.Errorf("verdict %s: %s", h.Verdict, h.Reason)
		}
		return nil
	})
	eventually(t, 2*time.Second, "the warning is logged", func() error {
		want := fmt.Sprintf("bootstrap %s at /ip4/127.0.0.1/tcp/%d unreachable after 3 tries: check the address and that TCP/UDP %d is open to it", id, port, port)
		if !strings.Contains(logs.String(), want) {
			return fmt.Errorf("no %q in the log:\n%s", want, logs.String())
		}
		return nil
	})
	if strings.Contains(logs.String(), "joined CLADNet") {
		t.Fatalf("logged the join with no bootstrap node reachable:\n%s", logs.String())
	}

	b, err := daemon.StartBootstrap(t.Context(), daemon.BootstrapConfig{Key: key, ListenIPs: []string{"127.0.0.1"}, Port: port, AnyCladnet: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	eventually(t, 20*time.Second, "the member recovers and joins", func() error {
		h := a.m.Status().Health
		if !h.Bootstrap[0].Connected || h.Verdict != api.HealthOK {
			return fmt.Errorf("verdict %s: %s", h.Verdict, h.Reason)
		}
		for _, want := range []string{"reachable again", "joined CLADNet"} {
			if !strings.Contains(logs.String(), want) {
				return fmt.Errorf("no %q in the log", want)
			}
		}
		return nil
	})
}
