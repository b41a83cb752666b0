package swim

// Kind is the type of a Message.
type Kind uint8

// Message kinds. Ping, Digest and a Push carrying Want are requests whose
// answer (Ack, DigestReply, Push) Detector.Handle returns, for the transport
// to send back on the same stream; PingReq is answered later, by an Ack that
// names the target.
const (
	KindPing        Kind = iota + 1 // are you alive?
	KindAck                         // yes (Target set: the indirect answer for Target)
	KindPingReq                     // please ping Target for me
	KindSuspect                     // I suspect you (Seq: your record I hold): refute if alive
	KindDigest                      // my table digest
	KindDigestReply                 // your digest differs in Diff: my entries there, and my digest
	KindPush                        // records you lack or hold older; Want: send me these
	KindNack                        // I pinged Target for you and got no answer (yet)
	numKinds
)

var kindNames = [...]string{"", "ping", "ack", "ping-req", "suspect", "digest", "digest-reply", "push", "nack"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Kinds lists every message kind, in order.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := Kind(1); k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

// Message is one SWIM message. Records are opaque to this package: the
// Table's signed records (announcements, death notices), verified by the
// Table that applies them.
type Message struct {
	Kind    Kind     `json:"k"`
	Nonce   uint64   `json:"n,omitempty"`
	Target  string   `json:"t,omitempty"`
	Seq     uint64   `json:"s,omitempty"`
	Digest  []uint64 `json:"d,omitempty"`
	Diff    []int    `json:"x,omitempty"`
	Entries []Entry  `json:"e,omitempty"`
	Want    []string `json:"w,omitempty"`
	Records [][]byte `json:"r,omitempty"`
}

// Limits on a received message, so a peer cannot make a node allocate or
// work without bound.
const (
	MaxEntries = 1 << 16
	MaxRecords = 1 << 12
)

// Valid reports whether m is within the limits and well-formed.
func (m *Message) Valid() bool {
	if m.Kind == 0 || m.Kind >= numKinds || len(m.Entries) > MaxEntries || len(m.Records) > MaxRecords || len(m.Want) > MaxEntries {
		return false
	}
	if len(m.Digest) != 0 && len(m.Digest) != Buckets {
		return false
	}
	for _, b := range m.Diff {
		if b < 0 || b >= Buckets {
			return false
		}
	}
	return len(m.Diff) <= Buckets
}
