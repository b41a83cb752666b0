// Package paths is cbnode's path policy: which underlay path carries the
// packets to each member, how the choice is enforced on the live
// connections, and what the traffic on the path actually taken is billed.
//
// The decision itself is the cost engine's (cost.Decide, pure); this package
// applies it to a libp2p host:
//
//   - the connection gater asks Allow before every dial: a member's private
//     addresses are dialled only where the rules say the two share a
//     network (or neither side declared a VPC: a plain LAN);
//   - the packet link asks Score to pick the connection a stream rides;
//   - Enforce moves a member whose packet stream is not on the chosen path,
//     with a backoff per member when the chosen path does not answer;
//   - Billed says which class and price the bytes sent to a member pay.
//
// An address counts as on the private path when its IP is one of the
// member's declared private IPs, or a non-public IP that is not its declared
// public IP: so a host whose private and public IPs are the same (on-premises
// machines, labs) is on both paths at once and is never moved back and forth.
//
// Files:
//
//	doc.go      this overview
//	policy.go   Policy: Update (decisions from rules and cloud facts), Allow, Score
//	classify.go which path an address is on
//	enforce.go  Enforce: moving streams to the chosen path, with backoff
//	billing.go  Billed: the class and price of the path actually used
package paths
