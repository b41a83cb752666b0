package swim

import "encoding/binary"

// Buckets is the number of digest buckets: a digest is Buckets×8 bytes,
// and a difference costs the entries of the buckets that differ.
const Buckets = 64

// Digest is the XOR of EntryHash over a table's live entries, per bucket
// (BucketOf the member). XOR makes it incremental: Add and Remove cost O(1).
type Digest [Buckets]uint64

// Add records an entry (or removes it again: XOR).
func (d *Digest) Add(id string, seq uint64) { d[BucketOf(id)] ^= EntryHash(id, seq) }

// Remove undoes Add.
func (d *Digest) Remove(id string, seq uint64) { d.Add(id, seq) }

// Slice returns the digest as a slice (the wire form).
func (d *Digest) Slice() []uint64 { return append([]uint64(nil), d[:]...) }

// Diff returns the buckets in which d and the wire digest o differ.
func (d *Digest) Diff(o []uint64) []int {
	var out []int
	for i := range d {
		if i >= len(o) || d[i] != o[i] {
			out = append(out, i)
		}
	}
	return out
}

// BucketOf is the digest bucket of a member.
func BucketOf(id string) int { return int(fnv64(id, 0) % Buckets) }

// EntryHash hashes one (member, sequence number) pair.
func EntryHash(id string, seq uint64) uint64 {
	h := fnv64(id, seq)
	// splitmix64 finaliser: XOR of many hashes stays well mixed.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func fnv64(s string, seq uint64) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	return h
}
