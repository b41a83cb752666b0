package swim

// Entry is one live member of a table with the sequence number of the
// newest record held for it.
type Entry struct {
	ID  string `json:"i"`
	Seq uint64 `json:"s"`
}

// Table is what a Detector needs of a members table. Its methods are called
// with the Detector's lock held: they must not call the Detector back.
type Table interface {
	// NumMembers and MemberAt list the live members to probe, self
	// excluded, in any order (an index is valid until the table changes).
	NumMembers() int
	MemberAt(i int) string
	// Seq returns the sequence number of the newest record of a live
	// member (ok false: not a live member).
	Seq(id string) (seq uint64, ok bool)
	// Digest returns the table's digest over its live members, self
	// included (see Digest).
	Digest() *Digest
	// Bucket lists the live entries (self included) in digest bucket b.
	Bucket(b int) []Entry
	// Record returns the signed record the table holds for id: its newest
	// announcement, or the death notice of a member it dropped (nil: none).
	Record(id string) []byte
	// Apply verifies and applies records received from peer from. It
	// returns the members it dropped because a record was a death notice
	// of theirs: the detector hands each the notice, so a live one refutes
	// — how two sides of a healed partition find each other alive.
	// And it returns the members whose pushed record was older than the
	// record (or leave or death) the table holds: the detector pushes
	// that back, so a member that missed a leave or death learns of it.
	Apply(from string, recs [][]byte) (killed []Entry, stale []string)
	// Departed lists members confirmed dead (not left) recently: now and
	// then the anti-entropy exchange goes to one of them, so a partition
	// heals.
	Departed() []string
	// Confirm is called when id, last held at sequence number seq, failed
	// its probes and its suspicion timed out: the table drops it and
	// spreads a signed death notice.
	Confirm(id string, seq uint64)
	// Suspected is called when a fellow member suspects this node (it held
	// this node's record seq); the detector answers it with an ack, which
	// clears the suspicion. (A death, once spread, is refuted by a newer
	// announcement: see Apply.)
	Suspected(by string, seq uint64)
}
