// Package pathlog keeps each member's path history — every change of the
// path this node's packets to it take (direct, relayed and through which
// relay, down), and the healing events around it (the member moved or
// restarted, a hole punch, a path declared dead) — with when and why, in a
// small ring per peer, so that an operator can watch a heal happen in the
// API (pathHistory of GET /v1/cladnet/{id}/peer) and in `cbnode peers
// --json`.
//
// Files:
//
//	doc.go   this overview
//	log.go   Log (the rings), Change (one entry), Describe (a path as an entry)
package pathlog
