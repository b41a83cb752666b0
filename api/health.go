package api

import (
	"time"

	"github.com/cloud-barista/cbnode/node"
)

// Verdicts of Health.Verdict.
const (
	HealthOK       = "ok"       // connected, addressed, bootstrap nodes reachable
	HealthDegraded = "degraded" // working in part: see Reason
	HealthOffline  = "offline"  // no bootstrap node and no member connected
)

// Health is the connectivity part of GET /v1/status: is this node working,
// and if not, why.
type Health struct {
	Verdict string `json:"verdict"` // ok, degraded or offline
	Reason  string `json:"reason"`  // one line
	node.Health
	ConnectedMembers int      `json:"connectedMembers"`  // other members with a live connection
	Relays           []string `json:"relayReservations"` // relays holding a reservation for us
	IPAM             string   `json:"ipamState"`
}

// NetcheckTarget is one bootstrap node or relay as GET /v1/netcheck dialled it.
type NetcheckTarget struct {
	ID       string   `json:"id"`
	Roles    []string `json:"roles"` // bootstrap, relay
	Addrs    []string `json:"addrs"` // the addresses known for it
	OK       bool     `json:"ok"`
	Remote   string   `json:"remote,omitempty"` // the connection's remote address
	Relayed  bool     `json:"relayed,omitempty"`
	RTTms    float64  `json:"rttMs,omitempty"`
	Error    string   `json:"error,omitempty"`
	Reserved bool     `json:"relayReservation"` // it holds a relay reservation for us
}

// Netcheck is GET /v1/netcheck: an active check of this node's connectivity,
// made when asked.
type Netcheck struct {
	Checked      time.Time           `json:"checked"`
	Took         string              `json:"took"`
	Targets      []NetcheckTarget    `json:"targets"`
	Reachability string              `json:"reachability"` // AutoNAT: unknown, public, private
	NATTCP       string              `json:"natTcp"`
	NATUDP       string              `json:"natUdp"`
	Observed     []node.ObservedAddr `json:"observedAddrs"`
	PublicAddrs  []string            `json:"publicAddrs"` // this node's own addresses that are public
	HolePunch    HolePunchReadiness  `json:"holePunch"`
}

// HolePunchReadiness says whether direct connections to this node can
// happen, and how.
type HolePunchReadiness struct {
	DCUtR    bool   `json:"dcutr"`            // hole punching enabled
	Relayed  bool   `json:"relayReservation"` // at least one relay reservation held
	Direct   string `json:"direct"`           // yes, likely, unlikely or unknown
	Analysis string `json:"analysis"`         // one line
}
