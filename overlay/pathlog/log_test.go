package pathlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPathChange(t *testing.T) {
	for _, c := range []struct {
		relayed           bool
		remote            string
		wantPath, wantVia string
	}{
		{false, "/ip4/7.7.7.11/tcp/7460", PathDirect, ""},
		{true, "/ip4/7.7.7.1/tcp/7460/p2p/12D3relay/p2p-circuit", PathRelayed, "12D3relay"},
		{true, "/ip4/7.7.7.1/tcp/7460/p2p-circuit", PathRelayed, ""},
		{false, "", PathDown, ""},
	} {
		got := PathChange(c.relayed, c.remote, "tcp", "why")
		if got.Path != c.wantPath || got.Via != c.wantVia || got.Event != EventPath {
			t.Errorf("PathChange(%v, %q) = %+v, want path %s via %q", c.relayed, c.remote, got, c.wantPath, c.wantVia)
		}
	}
}

func TestRecordDedupAndRing(t *testing.T) {
	l := New(4)
	at := time.Unix(1000, 0)
	n := 0
	l.now = func() time.Time { n++; return at.Add(time.Duration(n) * time.Second) }
	l.Record("p", PathChange(false, "/ip4/1.1.1.1/tcp/1", "tcp", "opened"))
	l.Record("p", PathChange(false, "/ip4/1.1.1.1/tcp/1", "tcp", "reopened")) // same path: dropped
	if h := l.Get("p"); len(h) != 1 {
		t.Fatalf("same path twice: %d entries, want 1: %+v", len(h), h)
	}
	l.Record("p", Change{Event: EventMoved, Reason: "new addresses"})
	l.Record("p", PathChange(false, "/ip4/1.1.1.1/tcp/1", "tcp", "again")) // same as the last path change: dropped
	if h := l.Get("p"); len(h) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(h), h)
	}
	for i := range 6 {
		l.Record("p", PathChange(i%2 == 0, fmt.Sprintf("/ip4/1.1.1.%d/tcp/1", i), "tcp", "x"))
	}
	h := l.Get("p")
	if len(h) != 4 || h[3].Remote != "/ip4/1.1.1.5/tcp/1" || !h[0].At.Before(h[3].At) {
		t.Fatalf("ring: %+v", h)
	}
	h[0].Reason = "changed by the caller"
	if l.Get("p")[0].Reason == "changed by the caller" {
		t.Fatal("Get returned the log's own slice")
	}
	l.Retain(func(peer.ID) bool { return false })
	if l.Get("p") != nil {
		t.Fatal("Retain kept a peer it was told to drop")
	}
	var nilLog *Log
	nilLog.Record("p", Change{}) // a member without a data plane has none
	if nilLog.Get("p") != nil {
		t.Fatal("nil log returned entries")
	}
}
