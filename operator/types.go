package operator

import (
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
)

// CLADNetSpecification, CLADNetSpecifications and Peers are the local
// API's types: one type for the operator's and the members' answers.
type (
	CLADNetSpecification  = api.CLADNetSpecification
	CLADNetSpecifications = api.CLADNetSpecifications
	Peers                 = api.Peers
)

func specOf(s *cladnet.Spec) CLADNetSpecification { return api.SpecOf(s) }

// CreateRequest is the body of POST /v1/cladnet: cb-network's spec, plus,
// for an empty ipv4AddressSpace, the members' underlay subnets and the
// expected number of hosts to recommend one from. cladnetId (and the older
// swagger's id) is accepted but cannot be chosen: the ID derives from the
// owner key; a client that set cladnetId = name (Tumblebug) finds the
// CLADNet by name.
type CreateRequest struct {
	ID               string   `json:"cladnetId"`
	OldID            string   `json:"id"`
	Name             string   `json:"name"`
	IPv4AddressSpace string   `json:"ipv4AddressSpace"`
	Description      string   `json:"description"`
	RuleType         string   `json:"ruleType"`
	IPv4CIDRs        []string `json:"ipv4Cidrs"`
	Hosts            int      `json:"hosts"`
}

// UpdateRequest is the body of PUT /v1/cladnet/{cladnetId}: cb-network's
// spec. description and ruleType change (a field left out is kept);
// cladnetId, name and ipv4AddressSpace may be sent but must match.
type UpdateRequest struct {
	ID               string  `json:"cladnetId"`
	OldID            string  `json:"id"`
	Name             string  `json:"name"`
	IPv4AddressSpace string  `json:"ipv4AddressSpace"`
	Description      *string `json:"description"`
	RuleType         string  `json:"ruleType"`
	OwnerKey         string  `json:"ownerKey"`
	CreatedAt        string  `json:"createdAt"`
}

// DeletionResult is DELETE /v1/cladnet/{cladnetId} (cb-network's shape).
type DeletionResult struct {
	IsSucceeded          bool                 `json:"isSucceeded"`
	Message              string               `json:"message"`
	CLADNetSpecification CLADNetSpecification `json:"cladnetSpecification"`
	// ArchivedTo is where the CLADNet's directory, owner key included, went.
	ArchivedTo string `json:"archivedTo"`
}

// AddressSpaces is POST /v1/cladnet/availableIPv4AddressSpaces, as on the
// local API (both of cb-network's spellings of the recommendation).
type AddressSpaces = api.AddressSpaces

// TokenRequest is the body of POST /v1/cladnet/{cladnetId}/token.
type TokenRequest struct {
	HostName string   `json:"hostName"`
	TTL      string   `json:"ttl"` // a Go duration ("24h", "90m"); default 24h
	Groups   []string `json:"groups"`
	// PeerID signs for a node that made its own key ('cbnode key'); the
	// token then carries no key.
	PeerID string `json:"peerId"`
	// Replace issues a host name that another node's live certificate holds.
	Replace bool `json:"replace"`
}

// TokenResponse is its answer.
type TokenResponse struct {
	Token     string    `json:"token"`
	CladnetID string    `json:"cladnetId"`
	HostName  string    `json:"hostName"`
	PeerID    string    `json:"peerId"`
	NotAfter  time.Time `json:"notAfter"`
}
