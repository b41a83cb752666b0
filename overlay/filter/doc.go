// Package filter is the inbound packet filter of the CLADNet data plane: a
// member accepts a data packet from another member only if the owner-signed
// rules document (cost.FilterPolicy) allows it, or if it answers a
// connection the member opened itself (connection tracking).
//
// It is pure: no goroutines, no I/O, no clock of its own beyond
// Options.Now. The forwarding engine (overlay/forward) calls Outbound for
// every data packet it sends and Inbound for every data packet it
// received and already checked (framing, IPv4 sanity, source owned by the
// sending peer, destination is this node); the daemon calls SetPolicy when
// new rules arrive and SetPeers when the members table changes.
//
// Evaluation of an inbound packet, in order:
//
//  1. No rule applies to this node and the default is allow: accept
//     (today's behaviour; nothing is tracked, the fast path).
//  2. The packet answers a tracked flow (a TCP/UDP packet from the remote
//     end of a flow this node sent on, an ICMP echo reply to our echo
//     request, an ICMP error about one of our flows): accept, counted as
//     "established".
//  3. The first rule whose from-selector matches the sender's certificate
//     (host name, groups) and whose protocol, destination ports or ICMP
//     types match decides: allow or deny, counted against the rule.
//  4. Otherwise the policy's default decides, counted as "default".
//
// Rules whose to-selector does not match this node's own certificate are
// dropped when the policy is compiled, and each peer's list of candidate
// rules (from-selector matched) is precomputed on SetPeers, so a packet
// costs one atomic load, a header parse, one conntrack shard lookup and a
// short scan.
//
// The flow table is bounded (Options.MaxFlows, sharded by flow hash) with
// per-protocol idle timeouts (TCP 12 min, UDP 3 min, ICMP and others 30 s,
// as Nebula's defaults); a full shard first forgets expired flows, then an
// arbitrary one, counted as evicted.
//
// Non-first IPv4 fragments carry no ports: they match only rules without
// ports and no tracked flow.
//
// Layout:
//
//	doc.go        this overview
//	filter.go     Filter: policy compilation, SetPeers, Inbound/Outbound, Stats
//	packet.go     the IPv4/TCP/UDP/ICMP header fields the filter reads
//	conntrack.go  bounded, sharded flow table with idle timeouts
package filter
