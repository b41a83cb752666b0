package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/openapitest"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/pathlog"
)

// docBackend answers with every field set (omitempty ones included), so
// the OpenAPI test sees each field a real node can emit.
type docBackend struct{ fakeBackend }

var (
	t0         = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	otherID, _ = peer.Decode("12D3KooWHTzcB8ZHP4NvjxyAqdtbB18fLurjN4nKEDXZQ2DP4Ldd")
)

func (d *docBackend) Status() Status {
	st := d.fakeBackend.Status()
	st.CIDR, st.RuleType, st.IP, st.IPv4CIDR, st.IPAMState, st.State = "10.77.0.0/24", "basic", "10.77.0.2", "10.77.0.2/24", "assigned", "tunneling"
	st.Addrs, st.Members, st.Started, st.Uptime, st.Version, st.CertUntil, st.Device = []string{"/ip4/127.0.0.1/tcp/7460"}, 2, t0, "1m0s", Version, t0, "cbnet0"
	st.Rejected = map[string]uint64{"bad-signature": 1}
	st.Health = &Health{Verdict: HealthOK, Reason: "connected", Health: node.Health{
		Bootstrap:    []node.BootstrapHealth{{ID: "12D3boot", Addrs: []string{"/ip4/127.0.0.1/tcp/7460"}, Connected: true, Failures: 1, LastError: "x", LastTry: t0}},
		RoutingTable: 3, Reachability: "private", NATTCP: "unknown", NATUDP: "endpoint-independent",
		Observed: []node.ObservedAddr{{Addr: "/ip4/192.0.2.1/tcp/7460", Observers: 2}},
	}, ConnectedMembers: 1, Relays: []string{"12D3relay"}, IPAM: "assigned"}
	return st
}

func (d *docBackend) CLADNet() CLADNetSpecification {
	return CLADNetSpecification{ID: "cnabc", Name: "lab", IPv4AddressSpace: "10.77.0.0/24", Description: "a lab", RuleType: "basic", OwnerKey: "b3duZXI=", CreatedAt: t0}
}

func (d *docBackend) Peers() []Peer {
	self := d.fakeBackend.Peers()[0]
	self.CladnetID, self.State = "cnabc", "tunneling"
	other := Peer{CladnetID: "cnabc", HostID: "12D3other", HostName: "vm2", HostPrivateIPv4CIDR: "192.168.1.0/24", HostPrivateIP: "192.168.1.5",
		HostPublicIP: "192.0.2.5", IPv4CIDR: "10.77.0.3/24", IP: "10.77.0.3", State: "tunneling",
		Details: cost.CloudInfo{ProviderName: "aws", RegionID: "r", AvailabilityZoneID: "z", VirtualNetworkID: "v", SubnetID: "s", PrivateIPs: []string{"192.168.1.5"}, PublicIP: "192.0.2.5"},
		Addrs:   []string{"/ip4/192.0.2.5/tcp/7460"}, Groups: []string{"web"}, FirstSeen: t0, LastSeen: t0, CertUntil: t0,
		Link:      &forward.PeerStats{Peer: otherID, TxPackets: 1, Drops: map[string]uint64{"queue-full": 1}, Path: forward.PathInfo{Relayed: true, Remote: "/ip4/1.2.3.4/tcp/1", Transport: "tcp"}, StreamUp: true, LastRecv: t0},
		HolePunch: &node.HolePunch{Success: false, Duration: "1s", At: t0, Error: "timeout"}, RTTms: 1.5,
		PathHistory: []pathlog.Change{
			{At: t0, Event: pathlog.EventPath, Path: pathlog.PathRelayed, Via: "12D3relay", Remote: "/ip4/1.2.3.4/tcp/1/p2p/12D3relay/p2p-circuit", Transport: "relay", Reason: "opened"},
			{At: t0, Event: pathlog.EventPunch, Reason: "succeeded in 20ms"},
			{At: t0, Event: pathlog.EventPath, Path: pathlog.PathDirect, Remote: "/ip4/192.0.2.5/tcp/7460", Transport: "tcp", Reason: "moved to a better connection"},
		}}
	return []Peer{self, other}
}

func (d *docBackend) Peer(id string) (Peer, bool) {
	for _, p := range d.Peers() {
		if p.HostID == id || p.HostName == id {
			return p, true
		}
	}
	return Peer{}, false
}

func (d *docBackend) Ping(_ context.Context, target string) (PingResult, error) {
	switch target {
	case "vm2":
		return PingResult{Target: "vm2", HostName: "vm2", IP: "10.77.0.3", RTTms: 0.4, Relayed: true, Remote: "/ip4/1.2.3.4/tcp/1", Transport: "tcp"}, nil
	case "slow":
		return PingResult{}, context.DeadlineExceeded
	case "broken":
		return PingResult{}, errors.New("ping: stream reset")
	}
	return PingResult{}, fmt.Errorf("no member %q: %w", target, ErrNotFound)
}

// Rules are newer than the token's spec: the owner switched the rule type.
func (d *docBackend) Rules() *cost.Rules {
	r := cost.DefaultRules("cnabc", cost.RuleCostPrioritized)
	r.Version, r.IssuedAt, r.Signature = 5, t0, "c2ln"
	return r
}

func (d *docBackend) SubmitRules(_ context.Context, doc []byte) (*cost.Rules, error) {
	switch strings.TrimSpace(string(doc)) {
	case "{}":
		return nil, ErrBadInput
	case `{"version":1}`:
		return nil, ErrConflict
	}
	r := cost.DefaultRules("cnabc", cost.RuleCostPrioritized)
	r.Version, r.IssuedAt, r.Signature = 7, t0, "c2ln"
	r.Prices.Providers = map[string]cost.ClassPrices{"aws": {cost.ClassInternet: 0.09}}
	return r, nil
}

func (d *docBackend) Revocation() *cladnet.Revocations {
	return &cladnet.Revocations{CladnetID: "cnabc", Version: 2, IssuedAt: t0, Signature: "c2ln",
		Entries: []cladnet.Revocation{{PeerID: "12D3c", HostName: "vm3", Fingerprint: "ab12", Reason: "stolen", RevokedAt: t0}}}
}

func (d *docBackend) SubmitRevocation(_ context.Context, doc []byte) (*cladnet.Revocations, error) {
	switch strings.TrimSpace(string(doc)) {
	case "{}":
		return nil, ErrBadInput
	case `{"version":1}`:
		return nil, ErrConflict
	}
	return d.Revocation(), nil
}

func (d *docBackend) NetworkingRule(host string) (NetworkingRule, error) {
	if host != "vm1" {
		return NetworkingRule{}, ErrForbidden
	}
	return NetworkingRule{CladnetID: "cnabc", RuleType: "basic", RulesVer: 3, HostID: []string{"12D3other"}, HostName: []string{"vm2"},
		PeerIP: []string{"10.77.0.3"}, SelectedIP: []string{"192.0.2.5"}, PeerScope: []string{"inter"}, State: []string{"tunneling"},
		Rules: []PathRule{{HostID: "12D3other", HostName: "vm2", PeerIP: "10.77.0.3", SelectedIP: "192.0.2.5", PeerScope: "inter", State: "tunneling",
			Class: "internet", PricePerGB: 0.09, Relayed: true, Remote: "/ip4/1.2.3.4/tcp/1", Reason: "public path"}}}, nil
}

func (d *docBackend) Cost() cost.Report {
	u := cost.Usage{Bytes: 1e9, SpentUSD: 0.01, BasicUSD: 0.09, SavedUSD: 0.08}
	return cost.Report{Peers: []cost.PeerReport{{Peer: "12D3other", Usage: u, Classes: map[cost.Class]cost.Usage{cost.ClassSameZone: u}}},
		Classes: map[cost.Class]cost.Usage{cost.ClassSameZone: u}, Total: u}
}

func (d *docBackend) Netcheck(context.Context) (Netcheck, error) {
	return Netcheck{Checked: t0, Took: "1s", Targets: []NetcheckTarget{{ID: "12D3boot", Roles: []string{"bootstrap", "relay"}, Addrs: []string{"/ip4/1.2.3.4/tcp/1"},
		OK: true, Remote: "/ip4/1.2.3.4/tcp/1", Relayed: true, RTTms: 3, Error: "x", Reserved: true}},
		Reachability: "private", NATTCP: "unknown", NATUDP: "unknown", Observed: []node.ObservedAddr{{Addr: "/ip4/192.0.2.1/tcp/7460", Observers: 1}},
		PublicAddrs: []string{"/ip4/192.0.2.1/tcp/7460"}, HolePunch: HolePunchReadiness{DCUtR: true, Relayed: true, Direct: "likely", Analysis: "ok"}}, nil
}

func TestOpenAPIDocumentValid(t *testing.T) {
	d, err := openapitest.Load(t.Context(), openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if d.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q", d.OpenAPI)
	}
}

// TestOpenAPIMember drives every route of the local API, success and error
// answers, and validates each against api/openapi.json.
func TestOpenAPIMember(t *testing.T) {
	chk := openapitest.New(t, openAPI, "member")
	s := NewServer(&docBackend{}, nil)
	chk.Routes(s.Routes())
	srv := httptest.NewServer(s)
	defer srv.Close()
	bare := httptest.NewServer(NewServer(nil, nil)) // no CLADNet joined
	defer bare.Close()

	do := func(base, method, path, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		code, out := chk.Do(http.DefaultClient, req)
		return code, string(out)
	}
	for _, c := range []struct {
		bare               bool
		method, path, body string
		code               int
	}{
		{false, "GET", "/health", "", 200},
		{false, "GET", "/openapi.json", "", 200},
		{false, "GET", "/", "", 200},
		{false, "GET", "/metrics", "", 200},
		{true, "GET", "/metrics", "", 503},
		{false, "GET", "/v1/status", "", 200},
		{true, "GET", "/v1/status", "", 503},
		{false, "GET", "/v1/netcheck", "", 200},
		{false, "POST", "/v1/ping", `{"target":"vm2"}`, 200},
		{false, "POST", "/v1/ping", `{"target":"nobody"}`, 404},
		{false, "POST", "/v1/ping", `{"target":"broken"}`, 500},
		{false, "POST", "/v1/ping", `{"target":"slow"}`, 504},
		{false, "POST", "/v1/ping", `{"host":"vm2"}`, 400},
		{false, "GET", "/v1/cladnet", "", 200},
		{true, "GET", "/v1/cladnet", "", 200},
		{false, "POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4Cidrs":["192.168.1.0/24"],"hosts":3}`, 200},
		{true, "POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4CIDRs":["nope"]}`, 400},
		{false, "GET", "/v1/cladnet/cnabc", "", 200},
		{false, "GET", "/v1/cladnet/lab", "", 200},
		{false, "GET", "/v1/cladnet/other", "", 404},
		{true, "GET", "/v1/cladnet/cnabc", "", 503},
		{false, "GET", "/v1/cladnet/cnabc/rules", "", 200},
		{false, "PUT", "/v1/cladnet/cnabc/rules", `{"signed":true}`, 200},
		{false, "PUT", "/v1/cladnet/cnabc/rules", `{}`, 400},
		{false, "PUT", "/v1/cladnet/cnabc/rules", `{"version":1}`, 409},
		{false, "GET", "/v1/cladnet/cnabc/revocation", "", 200},
		{false, "GET", "/v1/cladnet/other/revocation", "", 404},
		{false, "PUT", "/v1/cladnet/cnabc/revocation", `{"signed":true}`, 200},
		{false, "PUT", "/v1/cladnet/cnabc/revocation", `{}`, 400},
		{false, "PUT", "/v1/cladnet/cnabc/revocation", `{"version":1}`, 409},
		{false, "GET", "/v1/cladnet/cnabc/cost", "", 200},
		{false, "GET", "/v1/cladnet/other/cost", "", 404},
		{false, "GET", "/v1/cladnet/cnabc/peer", "", 200},
		{false, "GET", "/v1/cladnet/other/peer", "", 404},
		{true, "GET", "/v1/cladnet/cnabc/peer", "", 503},
		{false, "GET", "/v1/cladnet/cnabc/peer/vm2", "", 200},
		{false, "GET", "/v1/cladnet/cnabc/peer/nobody", "", 404},
		{false, "PUT", "/v1/cladnet/cnabc/peer/vm1/details", `{"cloudInformation":{"providerName":"aws","privateIps":[]}}`, 200},
		{false, "PUT", "/v1/cladnet/cnabc/peer/vm2/details", `{"cloudInformation":{}}`, 403},
		{false, "PUT", "/v1/cladnet/cnabc/peer/vm1/details", `{}`, 400},
		{false, "GET", "/v1/cladnet/cnabc/peer/vm1/networkingRule", "", 200},
		{false, "GET", "/v1/cladnet/cnabc/peer/vm2/networkingRule", "", 403},
		{false, "GET", "/v1/nowhere", "", 404},
		{false, "DELETE", "/v1/status", "", 405},
	} {
		base := srv.URL
		if c.bare {
			base = bare.URL
		}
		if code, body := do(base, c.method, c.path, c.body); code != c.code {
			t.Errorf("%s %s (bare %v): %d %s, want %d", c.method, c.path, c.bare, code, body, c.code)
		}
	}
	chk.Covered(s.Routes())

	// The document served is the embedded one.
	if _, body := do(srv.URL, "GET", "/openapi.json", ""); !bytes.Equal([]byte(body), openAPI) {
		t.Error("GET /openapi.json is not api/openapi.json")
	}
}

// TestMemberReadRoutes is the cb-network contract of a member's read
// routes: GET /v1/cladnet is {"cladnetSpecifications":[spec]}, the spec has
// cb-network's keys (the rule type in force), the peer list is
// {"peers":[...]} with cb-network's Peer keys.
func TestMemberReadRoutes(t *testing.T) {
	srv := httptest.NewServer(NewServer(&docBackend{}, nil))
	defer srv.Close()
	get := func(path string, out any) {
		t.Helper()
		c := NewClient(srv.URL)
		if err := c.Do(t.Context(), "GET", path, nil, out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	specKeys := []string{"cladnetId", "name", "ipv4AddressSpace", "description", "ruleType"}
	var list map[string][]map[string]any
	get("/v1/cladnet", &list)
	if len(list) != 1 || len(list["cladnetSpecifications"]) != 1 {
		t.Fatalf("GET /v1/cladnet: %v", list)
	}
	for _, k := range specKeys {
		if _, ok := list["cladnetSpecifications"][0][k]; !ok {
			t.Errorf("list entry lacks %q: %v", k, list)
		}
	}
	var spec map[string]any
	get("/v1/cladnet/lab", &spec)
	// The signed rules in force, not the token's spec, decide the rule type.
	if spec["cladnetId"] != "cnabc" || spec["name"] != "lab" || spec["ipv4AddressSpace"] != "10.77.0.0/24" || spec["description"] != "a lab" || spec["ruleType"] != "cost-prioritized" {
		t.Errorf("GET /v1/cladnet/lab: %v", spec)
	}
	var peers map[string][]map[string]any
	get("/v1/cladnet/cnabc/peer", &peers)
	if len(peers) != 1 || len(peers["peers"]) != 2 {
		t.Fatalf("GET .../peer: %v", peers)
	}
	for _, k := range []string{"cladnetId", "hostId", "hostName", "hostPrivateIpv4Cidr", "hostPrivateIp", "hostPublicIp", "ipv4Cidr", "ip", "state", "details"} {
		if _, ok := peers["peers"][1][k]; !ok {
			t.Errorf("peer lacks %q: %v", k, peers["peers"][1])
		}
	}
	for _, k := range []string{"providerName", "regionId", "availabilityZoneId", "virtualNetworkId", "subnetId"} {
		if _, ok := peers["peers"][1]["details"].(map[string]any)[k]; !ok {
			t.Errorf("details lack %q", k)
		}
	}
	// The typed client reads the envelope.
	ps, err := NewClient(srv.URL).Peers(t.Context())
	if err != nil || len(ps) != 2 || ps[1].HostName != "vm2" {
		t.Errorf("Client.Peers: %v %+v", err, ps)
	}
}
