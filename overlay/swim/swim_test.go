package swim

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDigestIncremental(t *testing.T) {
	var a, b Digest
	a.Add("x", 1)
	a.Add("y", 2)
	b.Add("y", 2)
	if d := a.Diff(b.Slice()); len(d) != 1 || d[0] != BucketOf("x") {
		t.Fatalf("diff %v, want [%d]", d, BucketOf("x"))
	}
	a.Remove("x", 1)
	if d := a.Diff(b.Slice()); len(d) != 0 {
		t.Fatalf("diff after remove %v", d)
	}
	a.Add("y", 3) // a different seq is a different entry
	if len(a.Diff(b.Slice())) == 0 {
		t.Fatal("a changed sequence number does not change the digest")
	}
}

func TestMessageValid(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want bool
	}{
		{Message{Kind: KindPing}, true},
		{Message{}, false},
		{Message{Kind: 99}, false},
		{Message{Kind: KindDigest, Digest: make([]uint64, 3)}, false},
		{Message{Kind: KindDigest, Digest: make([]uint64, Buckets)}, true},
		{Message{Kind: KindDigestReply, Diff: []int{Buckets}}, false},
		{Message{Kind: KindPush, Records: make([][]byte, MaxRecords+1)}, false},
	} {
		if got := tc.m.Valid(); got != tc.want {
			t.Errorf("%+v: valid %v, want %v", tc.m, got, tc.want)
		}
	}
}

type listTable struct {
	Table
	ids []string
}

func (l listTable) NumMembers() int       { return len(l.ids) }
func (l listTable) MemberAt(i int) string { return l.ids[i] }

// TestProbeRound: one round probes every member exactly once.
func TestProbeRound(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 97, 100} {
		tab := listTable{}
		for i := range n {
			tab.ids = append(tab.ids, string(rune('A'+i%26))+string(rune('a'+i/26)))
		}
		d := New(Config{Self: "self", Table: tab, Rand: rand.New(rand.NewPCG(1, uint64(n))), ProbeInterval: time.Second})
		seen := map[string]int{}
		for range n {
			seen[d.nextTarget()]++
		}
		if len(seen) != n {
			t.Fatalf("n=%d: a round probed %d distinct members: %v", n, len(seen), seen)
		}
	}
}
