// Package api is cbnode's local HTTP API (on 127.0.0.1:7470 by default): the
// server, the JSON types it speaks, and the small client the CLI uses.
// Field names follow cb-network's REST API where it had them. helpers.go
// exports the JSON answers, error style, browser guard, the OpenAPI document
// and a route-recording mux for cbnode's other HTTP service, the operator
// (package operator). openapi.json describes both servers; the tests hold
// both to it (internal/openapitest).
package api

import (
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay/filter"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/pathlog"
)

// Status is GET /v1/status.
type Status struct {
	PeerID    string            `json:"peerId"`
	HostName  string            `json:"hostName"`
	CladnetID string            `json:"cladnetId"`
	Cladnet   string            `json:"cladnetName"`
	CIDR      string            `json:"ipv4AddressSpace"`
	RuleType  string            `json:"ruleType"`
	IP        string            `json:"ip,omitempty"`
	IPv4CIDR  string            `json:"ipv4Cidr,omitempty"`
	IPAMState string            `json:"ipamState,omitempty"`
	State     string            `json:"state"`
	DataPlane string            `json:"dataPlane,omitempty"` // "up", or "down" by the CLADNet's DOWN command
	Addrs     []string          `json:"addrs"`
	Members   int               `json:"members"`
	Started   time.Time         `json:"started"`
	Uptime    string            `json:"uptime"`
	Version   string            `json:"version"`
	CertUntil time.Time         `json:"certNotAfter"`
	Device    string            `json:"device,omitempty"`
	Rejected  map[string]uint64 `json:"rejectedAnnouncements,omitempty"`
	Health    *Health           `json:"health,omitempty"`
	// IdentityConflict, when set, says another node runs with this node's
	// peer ID (a cloned VM or a token used twice).
	IdentityConflict string `json:"identityConflict,omitempty"`
	// Tunnels is "full-mesh" (a connection to every member: the CLADNet
	// has at most --full-mesh-max members) or "lazy" (tunnels opened by
	// the first packet and closed when idle).
	Tunnels string `json:"tunnels,omitempty"`
}

// StateRevoked is the state the operator's peer list shows for a node whose
// certificate the owner revoked (members drop such nodes from their tables).
const StateRevoked = "revoked"

// Peer is one member as GET /v1/cladnet/{cladnetId}/peer lists it. The
// cb-network fields come first; hostId is the member's peer ID.
type Peer struct {
	CladnetID           string         `json:"cladnetId"`
	HostID              string         `json:"hostId"`
	HostName            string         `json:"hostName"`
	HostPrivateIPv4CIDR string         `json:"hostPrivateIpv4Cidr,omitempty"`
	HostPrivateIP       string         `json:"hostPrivateIp,omitempty"`
	HostPublicIP        string         `json:"hostPublicIp,omitempty"`
	IPv4CIDR            string         `json:"ipv4Cidr,omitempty"`
	IP                  string         `json:"ip,omitempty"`
	State               string         `json:"state"`
	Details             cost.CloudInfo `json:"details"`

	Self      bool      `json:"self"`
	Addrs     []string  `json:"addrs,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	CertUntil time.Time `json:"certNotAfter"`
	// Link is the data plane's view of the peer (counters, path), if any.
	Link *forward.PeerStats `json:"link,omitempty"`
	// HolePunch is the latest NAT hole punch with the peer, if any.
	HolePunch *node.HolePunch `json:"holePunch,omitempty"`
	// PathHistory is how this node's path to the peer changed, oldest
	// first (the last pathlog.DefaultSize entries): direct, relayed
	// (through which relay) or down, when and why, and the healing
	// events around it.
	PathHistory []pathlog.Change `json:"pathHistory,omitempty"`
	// Conns are the underlay connections this node holds to the peer
	// (their remote multiaddrs; relayed ones contain /p2p-circuit). With
	// lazy tunnels a member without traffic, gossip or DHT ties to this
	// node has none.
	Conns []string `json:"conns,omitempty"`
	// RTTms is libp2p's moving average of the round trip to the peer
	// (its pings and identify exchanges), 0 if unknown.
	RTTms float64 `json:"rttMs,omitempty"`
}

// Peers is GET /v1/cladnet/{cladnetId}/peer on both servers (cb-network's
// envelope).
type Peers struct {
	Peers []Peer `json:"peers"`
}

// CLADNetSpecification is cb-network's CLADNet (v0.0.16 swagger: cladnetId,
// name, ipv4AddressSpace, description, ruleType), plus cbnode's ownerKey and
// createdAt: GET /v1/cladnet/{cladnetId} on the operator and on members.
// Every cb-network field is always present, as grpc-gateway emits them.
type CLADNetSpecification struct {
	ID               string    `json:"cladnetId"`
	Name             string    `json:"name"`
	IPv4AddressSpace string    `json:"ipv4AddressSpace"`
	Description      string    `json:"description"`
	RuleType         string    `json:"ruleType"`
	OwnerKey         string    `json:"ownerKey,omitempty"`
	CreatedAt        time.Time `json:"createdAt,omitzero"`
}

// SpecOf is s in cb-network's field names.
func SpecOf(s *cladnet.Spec) CLADNetSpecification {
	return CLADNetSpecification{ID: s.ID, Name: s.Name, IPv4AddressSpace: s.CIDR, Description: s.Description,
		RuleType: s.RuleType, OwnerKey: s.OwnerKey, CreatedAt: s.CreatedAt}
}

// CLADNetSpecifications is GET /v1/cladnet (cb-network's envelope).
type CLADNetSpecifications struct {
	CLADNetSpecifications []CLADNetSpecification `json:"cladnetSpecifications"`
}

// PingResult is POST /v1/ping.
type PingResult struct {
	Target    string  `json:"target"`
	HostName  string  `json:"hostName"`
	IP        string  `json:"ip"`
	RTTms     float64 `json:"rttMs"`
	Relayed   bool    `json:"relayed"`
	Remote    string  `json:"remote"`
	Transport string  `json:"transport"`
}

// AddressSpaceRequest is the body of POST /v1/cladnet/availableIPv4AddressSpaces.
type AddressSpaceRequest struct {
	IPv4CIDRs []string `json:"ipv4CIDRs"`
	Hosts     int      `json:"hosts"`
}

// AddressSpaces is its answer, in cb-network's field names: the
// recommendation under both of cb-network's spellings (its Go model's and
// its swagger's).
type AddressSpaces struct {
	Recommended     string   `json:"recommendedIPv4PrivateAddressSpace"`
	RecommendedIpv4 string   `json:"recommendedIpv4PrivateAddressSpace"`
	Space10s        []string `json:"addressSpace10s"`
	Space172s       []string `json:"addressSpace172s"`
	Space192s       []string `json:"addressSpace192s"`
	Hosts           int      `json:"hosts"`
	Headroom        float64  `json:"headroom"`
}

// Error is every error body.
type Error struct {
	Error string `json:"error"`
}

// PathRule is one peer's row of the networking-rule table: where packets to
// the peer go, and why.
type PathRule struct {
	HostID     string  `json:"hostId"`
	HostName   string  `json:"hostName"`
	PeerIP     string  `json:"peerIp"`     // the peer's overlay IP
	SelectedIP string  `json:"selectedIp"` // the underlay address in use (or chosen)
	PeerScope  string  `json:"peerScope"`  // intra (private path) or inter (public path)
	State      string  `json:"state"`
	Class      string  `json:"pathClass"`
	PricePerGB float64 `json:"pricePerGb"`
	Relayed    bool    `json:"relayed"`
	Remote     string  `json:"remote,omitempty"` // multiaddr of the live packet stream
	Reason     string  `json:"reason"`
	// TxBytes and RxBytes are the data plane's counters for the peer
	// (what the console shows as traffic).
	TxBytes uint64 `json:"txBytes"`
	RxBytes uint64 `json:"rxBytes"`
}

// NetworkingRule is GET /v1/cladnet/{cladnetId}/peer/{hostId}/networkingRule:
// cb-network's parallel arrays (one index per other peer), plus the richer
// rows in "rules".
type NetworkingRule struct {
	CladnetID  string     `json:"cladnetId"`
	RuleType   string     `json:"ruleType"`
	RulesVer   uint64     `json:"rulesVersion"`
	HostID     []string   `json:"hostId"`
	HostName   []string   `json:"hostName"`
	PeerIP     []string   `json:"peerIp"`
	SelectedIP []string   `json:"selectedIp"`
	PeerScope  []string   `json:"peerScope"`
	State      []string   `json:"state"`
	Rules      []PathRule `json:"rules"`
	// Cost is the node's metered spend (GET .../cost on its local API), so
	// the operator can sum every member's without reaching their APIs.
	Cost *cost.Report `json:"cost,omitempty"`
	// Filter is the inbound packet filter as this node applies it (the
	// rules' "filter" policy), with its counters; absent without a data
	// plane.
	Filter *filter.Stats `json:"filter,omitempty"`
}
