// Package swim finds failed members of a CLADNet without broadcast, and keeps
// members tables in step without periodic re-announcements.
//
// Failure detection follows SWIM (Das, Gupta, Motivala 2002): every
// ProbeInterval a node pings one member over a direct stream, walking a
// shuffled list of the members so each is probed once per round; without an
// ack within ProbeTimeout it asks IndirectProbes other members to ping the
// target for it; without any ack by the end of the period it suspects the
// target (locally — a suspicion is not spread) and tells the target, whose
// ack on that stream clears it. A suspicion not
// refuted within SuspicionTimeout is a confirmed death: the Table drops the
// member and spreads a death notice signed by the detector, which the member
// itself can refute the same way. Every node sends one probe and answers one
// on average per period, whatever the size of the CLADNet: O(1) per node.
//
// Lifeguard (Dadgar et al. 2018) keeps a slow node from declaring healthy
// members dead: a relay that cannot reach the target either answers with a
// nack, and a node whose probes fail while its relays stay silent, or that
// is itself suspected, raises its local health multiplier, which stretches
// its probe period, timeouts and suspicions (up to 9×) until probes succeed
// again. A node whose probe gets neither an ack nor any relay's answer is
// cut off (its link down, its VM suspended): it confirms no death — its
// suspicions are held — until a round trip works again (a probe's ack, a
// relay's nack); then each runs a fresh term, its target pinged anew. Held
// suspicions are confirmed only after 10 more probes failed that way (about
// 1.5 min at full stretch), so a member whose every peer died still drops
// them. A message from a suspected member clears its suspicion, and a
// member that pings a node holding it dead is handed its death notice at
// once, so it refutes.
//
// Anti-entropy: every DigestInterval a node sends one random member the
// digest of its table (Buckets XOR-hashes of (member, sequence number)); the
// other answers with its entries of the buckets that differ, and the two push
// and pull only the records that differ. In steady state that is one message
// of Buckets×8 bytes per node per DigestInterval: O(1) per node.
//
// The package knows no libp2p and no clock: Transport, Clock and Table are
// small interfaces; the overlay wires libp2p streams, the wall clock and the
// signed members table, and sim/ wires an in-memory network and virtual time,
// so the same code runs in both.
//
//	doc.go       this overview
//	clock.go     Clock, Timer, the wall clock
//	message.go   the wire messages and their kinds
//	table.go     Table (what the detector needs of a members table), Entry
//	digest.go    the bucketed table digest
//	detector.go  the failure detector and the anti-entropy exchange
package swim
