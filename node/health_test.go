package node

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestBootTracker: one warning on the third failed round in a row (not
// before, not again), one notice on recovery, counters reset.
func TestBootTracker(t *testing.T) {
	var logs bytes.Buffer
	tr := newBootTracker(slog.New(slog.NewTextHandler(&logs, nil)), 3)
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	bp := peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.250.0.99/tcp/7461")}}
	fail := errors.New("dial tcp 10.250.0.99:7461: i/o timeout")
	count := func(s string) int { return strings.Count(logs.String(), s) }
	for i := 1; i <= 5; i++ {
		tr.result(bp, fail, time.Now())
		want := 0
		if i >= 3 {
			want = 1
		}
		if got := count("level=WARN"); got != want {
			t.Fatalf("after %d failures: %d warnings, want %d:\n%s", i, got, want, logs.String())
		}
	}
	if want := "bootstrap " + id.String() + " at /ip4/10.250.0.99/tcp/7461 unreachable after 3 tries: check the address and that TCP/UDP 7461 is open to it"; count(want) != 1 {
		t.Errorf("no %q in\n%s", want, logs.String())
	}
	if h := tr.snapshot(bp); h.Failures != 5 || h.LastError != fail.Error() {
		t.Errorf("snapshot %+v", h)
	}
	tr.result(bp, nil, time.Now())
	tr.result(bp, nil, time.Now())
	if count("reachable again after 5 failed tries") != 1 || count("level=INFO") != 1 {
		t.Errorf("recovery notices:\n%s", logs.String())
	}
	if h := tr.snapshot(bp); h.Failures != 0 || h.LastError != "" {
		t.Errorf("snapshot after recovery %+v", h)
	}
	tr.result(bp, fail, time.Now())
	tr.result(bp, fail, time.Now())
	tr.result(bp, fail, time.Now())
	if count("level=WARN") != 2 {
		t.Errorf("a second outage is not warned about:\n%s", logs.String())
	}
}

func TestDialError(t *testing.T) {
	for in, want := range map[string]string{
		"connection refused": "connection refused",
		"failed to dial: failed to dial 12D3KooWX: all dials failed\n  * [/ip4/10.250.0.99/tcp/7460] dial tcp4 10.250.0.99:7460: i/o timeout\n  * [/ip4/10.250.0.99/udp/7460/quic-v1] timeout: no recent network activity": "[/ip4/10.250.0.99/tcp/7460] dial tcp4 10.250.0.99:7460: i/o timeout; [/ip4/10.250.0.99/udp/7460/quic-v1] timeout: no recent network activity",
	} {
		if got := DialError(errors.New(in)); got != want {
			t.Errorf("DialError(%q) = %q, want %q", in, got, want)
		}
	}
}
