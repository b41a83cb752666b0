package sim

import (
	"encoding/binary"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Record kinds. A record is [kind][member uint32][seq uint32]; the wire
// size charged for it is that of the overlay's signed record.
const (
	recAnnounce byte = 'A'
	recLeave    byte = 'L'
	recDeath    byte = 'D'
)

func record(kind byte, idx int, seq uint32) []byte {
	b := make([]byte, 9)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(idx))
	binary.BigEndian.PutUint32(b[5:], seq)
	return b
}

func parseRecord(b []byte) (kind byte, idx int, seq uint32, ok bool) {
	if len(b) != 9 {
		return 0, 0, 0, false
	}
	return b[0], int(binary.BigEndian.Uint32(b[1:])), binary.BigEndian.Uint32(b[5:]), true
}

func recordWireSize(b []byte) int {
	switch b[0] {
	case recDeath:
		return DeathSize
	case recLeave:
		return LeaveSize
	}
	return AnnouncementSize
}

// departedFor is how long a confirmed death is kept in Departed.
const departedFor = 10 * time.Minute

type tombstone struct {
	seq  uint32
	kind byte
}

type departure struct {
	idx int32
	at  time.Duration
}

// roster is one member's table, as compact state: live[i] is the sequence
// number of member i's newest record (0: not a live member), a dense list of
// the live members for probing, and tombstones of leaves and deaths. Its
// rules are the overlay table's: the newest record wins, and a leave or
// death notice at seq s removes the member and every record up to s.
type roster struct {
	n        *Node
	live     []uint32
	members  []int32 // live members, self excluded (dense, any order)
	pos      []int32 // index into members, -1: absent
	count    int     // live members, self included
	tombs    map[int32]tombstone
	departed []departure
	dig      swim.Digest
}

func newRoster(n *Node, size int) *roster {
	r := &roster{n: n, live: make([]uint32, size), pos: make([]int32, size), tombs: map[int32]tombstone{}}
	for i := range r.pos {
		r.pos[i] = -1
	}
	return r
}

// set changes member i's live sequence number (0: drop it).
func (r *roster) set(i int, seq uint32) {
	old := r.live[i]
	if old == seq {
		return
	}
	id := r.n.net.id(i)
	if old != 0 {
		r.dig.Remove(id, uint64(old))
		r.count--
	}
	if seq != 0 {
		r.dig.Add(id, uint64(seq))
		r.count++
	}
	r.live[i] = seq
	if i == r.n.idx {
		return
	}
	switch {
	case old == 0 && seq != 0:
		r.pos[i] = int32(len(r.members))
		r.members = append(r.members, int32(i))
	case old != 0 && seq == 0:
		p := r.pos[i]
		last := r.members[len(r.members)-1]
		r.members[p] = last
		r.pos[last] = p
		r.members = r.members[:len(r.members)-1]
		r.pos[i] = -1
	}
}

// apply applies one record; it reports whether a live member was dropped
// by a death notice (kill) and whether the table changed.
func (r *roster) apply(rec []byte) (kill swim.Entry, killed, changed bool) {
	kind, i, seq, ok := parseRecord(rec)
	if !ok || i < 0 || i >= len(r.live) || seq == 0 {
		return swim.Entry{}, false, false
	}
	self := i == r.n.idx
	switch kind {
	case recAnnounce:
		if self {
			return swim.Entry{}, false, false
		}
		if t, ok := r.tombs[int32(i)]; ok && seq <= t.seq {
			return swim.Entry{}, false, false
		}
		if seq <= r.live[i] {
			return swim.Entry{}, false, false
		}
		delete(r.tombs, int32(i))
		r.set(i, seq)
		return swim.Entry{}, false, true
	case recLeave, recDeath:
		if self {
			if kind == recDeath {
				r.n.refute(seq)
			}
			return swim.Entry{}, false, false
		}
		if t, ok := r.tombs[int32(i)]; ok && seq <= t.seq {
			r.n.dupDeaths++
			return swim.Entry{}, false, false
		}
		cur := r.live[i]
		if cur > seq {
			return swim.Entry{}, false, false // refuted already
		}
		r.tombs[int32(i)] = tombstone{seq: seq, kind: kind}
		if kind == recDeath {
			r.departed = append(r.departed, departure{idx: int32(i), at: r.n.net.eng.Now()})
		}
		if cur == 0 {
			return swim.Entry{}, false, false
		}
		r.set(i, 0)
		return swim.Entry{ID: r.n.net.id(i), Seq: uint64(cur)}, kind == recDeath, true
	}
	return swim.Entry{}, false, false
}

// swim.Table:

func (r *roster) NumMembers() int       { return len(r.members) }
func (r *roster) MemberAt(i int) string { return r.n.net.id(int(r.members[i])) }

func (r *roster) Seq(id string) (uint64, bool) {
	i := indexOf(id)
	if i < 0 || i >= len(r.live) || r.live[i] == 0 {
		return 0, false
	}
	return uint64(r.live[i]), true
}

func (r *roster) Digest() *swim.Digest { return &r.dig }

func (r *roster) Bucket(b int) []swim.Entry {
	var out []swim.Entry
	for _, i := range r.n.net.buckets[b] {
		if s := r.live[i]; s != 0 {
			out = append(out, swim.Entry{ID: r.n.net.id(int(i)), Seq: uint64(s)})
		}
	}
	return out
}

func (r *roster) Record(id string) []byte {
	i := indexOf(id)
	if i < 0 || i >= len(r.live) {
		return nil
	}
	if s := r.live[i]; s != 0 {
		return record(recAnnounce, i, s)
	}
	if t, ok := r.tombs[int32(i)]; ok {
		return record(t.kind, i, t.seq)
	}
	return nil
}

func (r *roster) Apply(_ string, recs [][]byte) (killed []swim.Entry, stale []string) {
	for _, rec := range recs {
		e, k, _ := r.apply(rec)
		if k {
			killed = append(killed, e)
		}
		if kind, i, seq, ok := parseRecord(rec); ok && i >= 0 && i < len(r.live) && i != r.n.idx {
			t, tomb := r.tombs[int32(i)]
			if r.live[i] > seq || (kind == recAnnounce && tomb && t.seq >= seq) {
				stale = append(stale, r.n.net.id(i))
			}
		}
	}
	return killed, stale
}

func (r *roster) Departed() []string {
	now := r.n.net.eng.Now()
	k := 0
	for k < len(r.departed) && now-r.departed[k].at > departedFor {
		k++
	}
	r.departed = r.departed[k:]
	var out []string
	for _, d := range r.departed {
		if r.live[d.idx] == 0 {
			out = append(out, idOf(int(d.idx)))
		}
	}
	return out
}

func (r *roster) Confirm(id string, seq uint64) {
	i := indexOf(id)
	if i < 0 || uint64(r.live[i]) != seq {
		return
	}
	r.n.confirmed++
	rec := record(recDeath, i, uint32(seq))
	r.apply(rec)
	r.n.net.publish(r.n.idx, rec)
}

func (r *roster) Suspected(string, uint64) { r.n.suspected++ }
