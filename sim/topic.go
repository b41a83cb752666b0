package sim

import (
	"math"
	"time"
)

// publish spreads a record on the membership topic from member a: every
// member subscribed for MeshDelay receives it after the link latency plus
// the mesh hops (log6 N: gossipsub's mesh degree is 6), and each member,
// the publisher too, is charged GossipCopies copies in and out. Members of
// one region receive it together (one event per region keeps 10,000
// members fast).
func (n *Network) publish(a int, rec []byte) {
	kind := topicKind(rec[0])
	size := uint64(float64(recordWireSize(rec)+frameOverhead) * n.cfg.GossipCopies)
	now := n.eng.Now()
	if n.hops == 0 {
		n.hops = max(1, int(math.Ceil(math.Log(float64(len(n.nodes)))/math.Log(6))))
	}
	src := n.nodes[a]
	src.traffic.MsgsOut[kind]++
	src.traffic.BytesOut[kind] += size
	for r := range n.cfg.Regions {
		d := n.region[n.regionOf(a)][r] + time.Duration(n.hops-1)*n.hopDelay
		n.eng.After(d, func() {
			for i := r; i < len(n.nodes); i += n.cfg.Regions {
				to := n.nodes[i]
				if i == a || !to.up || now < to.joined+n.cfg.MeshDelay || n.blocked(a, i) {
					continue
				}
				if n.cfg.TopicLoss > 0 && n.rnd.Float64() < n.cfg.TopicLoss {
					continue
				}
				to.traffic.MsgsIn[kind]++
				to.traffic.BytesIn[kind] += size
				to.traffic.BytesOut[kind] += size // it forwards as many copies as it gets
				to.fromTopic(src.id, rec)
			}
		})
	}
}

func topicKind(k byte) int {
	switch k {
	case recLeave:
		return TopicLeave
	case recDeath:
		return TopicDeath
	}
	return TopicAnnounce
}
