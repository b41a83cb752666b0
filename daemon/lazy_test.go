package daemon_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cost"
)

// TestLazyJoinWave: a CLADNet larger than its full-mesh limit (3 here) —
// members that joined after the others switched to lazy tunnels — still
// converges: every member lists every other at its address, and packets
// flow between every pair, each tunnel opened by its first packet.
func TestLazyJoinWave(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	var logs syncBuffer
	var ms []*member
	add := func(n int) {
		for range n {
			mb := l.member(fmt.Sprintf("vm%d", len(ms)+1))
			mb.fullMesh = 3
			mb.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", mb.name)
			mb.start()
			ms = append(ms, mb)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	add(3)
	eventually(t, 30*time.Second, "the first three converge", converged(ms))
	add(5)
	eventually(t, 60*time.Second, "all eight converge with lazy tunnels", converged(ms))
	for _, mb := range ms {
		if st := mb.m.Status(); st.Tunnels != "lazy" {
			t.Fatalf("%s: tunnels %q, want lazy", mb.name, st.Tunnels)
		}
	}
	meshDelivers(t, ms, 1)
}
