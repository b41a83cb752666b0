package pathlog

import (
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Events of a Change.
const (
	EventPath      = "path"       // the packet stream's path changed (Path says to what)
	EventMoved     = "moved"      // the member announced other addresses
	EventRestarted = "restarted"  // the member announced a new instance
	EventPunch     = "hole-punch" // a DCUtR hole punch ended (Reason: succeeded / the error)
	EventDead      = "dead"       // data sent went unanswered: the path was reset
)

// Paths of an EventPath change.
const (
	PathDirect  = "direct"
	PathRelayed = "relayed"
	PathDown    = "down"
)

// Change is one entry of a member's path history.
type Change struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	Path      string    `json:"path,omitempty"`      // for EventPath: direct, relayed or down
	Via       string    `json:"via,omitempty"`       // the relay's peer ID, for a relayed path
	Remote    string    `json:"remote,omitempty"`    // the connection's remote multiaddr
	Transport string    `json:"transport,omitempty"` // tcp, quic, relay
	Reason    string    `json:"reason,omitempty"`
}

// DefaultSize is the number of entries kept per member.
const DefaultSize = 32

// Log holds the rings. The zero value is not usable; call New.
type Log struct {
	mu   sync.Mutex
	size int
	by   map[peer.ID][]Change
	now  func() time.Time
}

// New makes a log keeping the last size entries per member (DefaultSize if
// size ≤ 0).
func New(size int) *Log {
	if size <= 0 {
		size = DefaultSize
	}
	return &Log{size: size, by: map[peer.ID][]Change{}, now: time.Now}
}

// Record appends c (stamped now if c.At is zero) to p's history. A path
// change to the path p already has is dropped, so a stream reopened on the
// same connection kind does not flood the ring.
func (l *Log) Record(p peer.ID, c Change) {
	if l == nil {
		return
	}
	if c.At.IsZero() {
		c.At = l.now()
	}
	c.At = c.At.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.by[p]
	if c.Event == EventPath {
		for i := len(h) - 1; i >= 0; i-- {
			if h[i].Event != EventPath {
				continue
			}
			if h[i].Path == c.Path && h[i].Remote == c.Remote {
				return
			}
			break
		}
	}
	h = append(h, c)
	if len(h) > l.size {
		h = append(h[:0:0], h[len(h)-l.size:]...)
	}
	l.by[p] = h
}

// Get returns a copy of p's history, oldest first (nil if none).
func (l *Log) Get(p peer.ID) []Change {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.by[p]
	if len(h) == 0 {
		return nil
	}
	return append([]Change(nil), h...)
}

// Forget drops p's history (the member left the table).
func (l *Log) Forget(p peer.ID) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.by, p)
	l.mu.Unlock()
}

// Retain drops the history of every peer keep does not report.
func (l *Log) Retain(keep func(peer.ID) bool) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range l.by {
		if !keep(p) {
			delete(l.by, p)
		}
	}
}

// PathChange describes a stream now riding the connection at remote
// (relayed or not, over transport), or no stream at all (remote "").
func PathChange(relayed bool, remote, transport, reason string) Change {
	c := Change{Event: EventPath, Remote: remote, Transport: transport, Reason: reason}
	switch {
	case remote == "":
		c.Path = PathDown
	case relayed:
		c.Path, c.Via = PathRelayed, relayOf(remote)
	default:
		c.Path = PathDirect
	}
	return c
}

// relayOf returns the relay's peer ID in a circuit address
// (/ip4/…/p2p/<relay>/p2p-circuit…), "" if there is none.
func relayOf(remote string) string {
	before, _, ok := strings.Cut(remote, "/p2p-circuit")
	if !ok {
		return ""
	}
	i := strings.LastIndex(before, "/p2p/")
	if i < 0 {
		return ""
	}
	return before[i+len("/p2p/"):]
}
