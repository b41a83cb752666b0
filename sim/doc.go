// Package sim is a deterministic simulator of CLADNet membership: thousands
// of members in one process, in virtual time, over an in-memory network with
// latency and loss per link, seeded and reproducible.
//
// Every member runs the daemon's own failure detector and anti-entropy code
// (overlay/swim: the same Detector the overlay runs over libp2p streams),
// with the simulator's Clock and Transport. The members table is the
// simulator's (roster.go): it keeps the overlay table's rules — the newest
// sequence number wins, a leave or a death notice at sequence s removes
// every record up to s, a member refutes its own death or suspicion by
// announcing itself anew — over compact integer state, so 10,000 tables of
// 10,000 members fit in memory. Gossipsub is modelled (topic.go): a
// publication reaches every subscribed member after the link latency plus
// the gossip hops, and each member is charged the copies gossipsub delivers.
//
//	doc.go      this overview
//	engine.go   the event queue and virtual clock (swim.Clock)
//	network.go  links (latency, loss, partitions), the swim.Transport, accounting
//	topic.go    the membership topic model (announcements, leaves, death notices)
//	roster.go   a member's table (swim.Table) and its records
//	node.go     a member: start, crash, leave, refutation
//	cluster.go  scenarios and measurements: cold start, convergence, crash and leave detection, churn
package sim
