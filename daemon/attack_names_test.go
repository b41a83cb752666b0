package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
)

// M6: two live certificates carry one host name (issued with --replace, or
// by two operators). 'cbnode ping NAME' and GET /peer/{hostId} used to pick
// one of them by peer-ID order; now they refuse with both candidates
// listed (409), and the peer IDs still reach each one.
func TestAmbiguousHostNameIsRefused(t *testing.T) {
	t.Parallel()
	l := newLab(t, "")
	asker, d1, d2 := l.member("asker"), l.member("dup"), l.member("dup")
	ms := []*member{asker, d1, d2}
	for _, m := range ms {
		m.start()
	}
	eventually(t, 30*time.Second, "three members converge", converged(ms))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := asker.client()
	id1, _ := peer.IDFromPrivateKey(d1.key)
	id2, _ := peer.IDFromPrivateKey(d2.key)
	check := func(what string, err error) {
		t.Helper()
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusConflict {
			t.Fatalf("%s dup: %v, want 409", what, err)
		}
		if !strings.Contains(err.Error(), id1.String()) || !strings.Contains(err.Error(), id2.String()) {
			t.Fatalf("%s dup: %q does not list both candidates", what, err)
		}
		t.Logf("%s dup: %v", what, err)
	}
	_, err := c.Peer(ctx, "dup")
	check("GET /peer/", err)
	_, err = c.Ping(ctx, "dup")
	check("ping", err)
	for _, id := range []peer.ID{id1, id2} {
		p, err := c.Peer(ctx, id.String())
		if err != nil || p.HostID != id.String() {
			t.Fatalf("by peer ID %s: %+v, %v", id, p, err)
		}
		if _, err := c.Ping(ctx, id.String()); err != nil {
			t.Fatalf("ping by peer ID %s: %v", id, err)
		}
	}
	if p, err := c.Peer(ctx, d2.ip().String()); err != nil || p.HostID != id2.String() {
		t.Fatalf("by overlay IP %s: %+v, %v", d2.ip(), p, err)
	}
	if _, err := c.Peer(ctx, "nobody"); err == nil || !strings.Contains(fmt.Sprint(err), "not a member") {
		t.Fatalf("unknown name: %v", err)
	}
}
