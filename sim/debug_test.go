package sim

import "testing"

// debugDiff logs (up to 20) table entries that differ from the truth.
func (s *Sim) debugDiff(t *testing.T) {
	n := 0
	for j := range s.used {
		nj := s.net.nodes[j]
		if !nj.up {
			continue
		}
		for i := range s.used {
			ni := s.net.nodes[i]
			want := uint32(0)
			if ni.up {
				want = ni.seq
			}
			if nj.tab.live[i] != want && n < 20 {
				n++
				tomb := nj.tab.tombs[int32(i)]
				t.Logf("node %d (joined %v) lists %d at %d, want %d (up %v, seq %d, joined %v); tomb %+v", j, nj.joined, i, nj.tab.live[i], want, ni.up, ni.seq, ni.joined, tomb)
			}
		}
	}
}
