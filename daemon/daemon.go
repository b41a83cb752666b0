// Package daemon runs a cbnode member (`cbnode join`) or bootstrap node
// (`cbnode bootstrap`) as one handle: Start wires the libp2p node,
// membership, rules, control, IPAM, the path policy, the data plane and the local API
// together and starts every goroutine under the handle; Stop leaves the
// CLADNet, stops them all in order and waits for each; Run is Start, wait,
// Stop. The package holds wiring only: policy lives in overlay/paths and
// cost, protocols in overlay, ipam and relay.
//
// Files:
//
//	daemon.go     this overview
//	config.go     Config, the Device seam and defaults
//	member.go     Member: Start, Stop, Run and the goroutines' owner
//	loop.go       the event loop: address changes, members, rules, control, paths
//	control.go    the control document: data plane DOWN/UP, connectivity test rows
//	backend.go    the local API's view of a member (status, peers, ping)
//	backend_cost.go rules, cost report and networking-rule table
//	health.go     health verdict, the "joined" log line, netcheck
//	operator_streams.go the operator's direct requests: signed details, networking rule
//	metrics.go    Prometheus metrics on a private registry
//	renew.go      certificate renewal through an operator; the saved renewal
//	dissolve.go   leaving when the owner dissolved the CLADNet
//	bootstrap.go  the bootstrap node handle; a relaying one keeps revocation lists
package daemon
