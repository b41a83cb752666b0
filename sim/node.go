package sim

import (
	"math/rand/v2"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Node is one simulated member.
type Node struct {
	idx     int
	id      string
	net     *Network
	det     *swim.Detector
	tab     *roster
	up      bool
	joined  time.Duration
	seq     uint32
	traffic Traffic

	confirmed uint64 // deaths this node confirmed
	refuted   uint64 // times it refuted its own death (a new announcement)
	suspected uint64 // suspicions of it it answered
	dupDeaths uint64 // death notices or leaves for members already gone
}

// start joins the member: it subscribes, and after rendezvous it announces
// itself on the topic and pulls from seed (-1: none) by a digest exchange.
func (n *Node) start(seed int, rendezvous time.Duration, sc swim.Config, rnd *rand.Rand) {
	n.up = true
	n.joined = n.net.eng.Now()
	n.seq++
	n.tab = newRoster(n, len(n.net.nodes))
	n.tab.set(n.idx, n.seq)
	sc.Self = n.id
	sc.Clock = n.net.eng.Clock()
	sc.Transport = transport{net: n.net, from: n.idx}
	sc.Table = n.tab
	sc.Rand = rnd
	n.det = swim.New(sc)
	det := n.det
	n.net.eng.After(rendezvous, func() {
		if !n.up || n.det != det {
			return
		}
		n.net.publish(n.idx, record(recAnnounce, n.idx, n.seq))
		det.Start()
		if seed >= 0 {
			det.SyncWith(idOf(seed))
		}
	})
}

// crash stops the member without a word.
func (n *Node) crash() {
	n.up = false
	n.det.Stop()
}

// leave announces a graceful departure, then stops.
func (n *Node) leave() {
	n.seq++
	n.net.publish(n.idx, record(recLeave, n.idx, n.seq))
	n.up = false
	n.det.Stop()
}

// refute answers a death notice of this member held at seq:
// a new announcement with a newer sequence number.
func (n *Node) refute(seq uint32) {
	if !n.up || seq < n.seq {
		return
	}
	n.refuted++
	n.seq = seq + 1
	n.tab.set(n.idx, n.seq)
	n.net.publish(n.idx, record(recAnnounce, n.idx, n.seq))
}

// fromTopic applies a publication received on the topic.
func (n *Node) fromTopic(_ string, rec []byte) { n.tab.apply(rec) }
