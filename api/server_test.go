package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

type fakeBackend struct{ details cost.CloudInfo }

func (f *fakeBackend) Status() Status {
	return Status{PeerID: "12D3self", HostName: "vm1", CladnetID: "cnabc", Cladnet: "lab"}
}
func (f *fakeBackend) CLADNet() CLADNetSpecification {
	return CLADNetSpecification{ID: "cnabc", Name: "lab", IPv4AddressSpace: "10.77.0.0/24", RuleType: "basic"}
}
func (f *fakeBackend) Peers() []Peer {
	return []Peer{{HostID: "12D3self", HostName: "vm1", Self: true}}
}
func (f *fakeBackend) Peer(id string) (Peer, bool) {
	if id == "vm1" || id == "12D3self" {
		return f.Peers()[0], true
	}
	return Peer{}, false
}
func (f *fakeBackend) SetDetails(id string, p cost.CloudPatch) (Peer, error) {
	if id != "vm1" {
		return Peer{}, ErrForbidden
	}
	f.details = p.Apply(f.details)
	return Peer{HostName: "vm1", Details: f.details}, nil
}
func (f *fakeBackend) Ping(context.Context, string) (PingResult, error) {
	return PingResult{}, ErrNotFound
}
func (f *fakeBackend) Rules() *cost.Rules               { return cost.DefaultRules("cnabc", cost.RuleBasic) }
func (f *fakeBackend) Revocation() *cladnet.Revocations { return nil }
func (f *fakeBackend) SubmitRevocation(context.Context, []byte) (*cladnet.Revocations, error) {
	return nil, ErrBadInput
}
func (f *fakeBackend) SubmitRules(context.Context, []byte) (*cost.Rules, error) {
	return nil, ErrBadInput
}
func (f *fakeBackend) NetworkingRule(string) (NetworkingRule, error) {
	return NetworkingRule{}, ErrForbidden
}
func (f *fakeBackend) Cost() cost.Report { return cost.Report{} }
func (f *fakeBackend) Netcheck(context.Context) (Netcheck, error) {
	return Netcheck{Reachability: "private"}, nil
}
func (f *fakeBackend) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "cbnode_members 1\n") })
}

func TestServer(t *testing.T) {
	b := &fakeBackend{}
	srv := httptest.NewServer(NewServer(b, nil))
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"GET", "/health", "", 200, "healthy"},
		{"GET", "/v1/status", "", 200, `"cladnetId": "cnabc"`},
		{"GET", "/v1/cladnet/cnabc/peer", "", 200, `{
  "peers": [
    {
      "cladnetId": "",
      "hostId": "12D3self",
      "hostName": "vm1",`},
		{"GET", "/v1/cladnet", "", 200, `{
  "cladnetSpecifications": [
    {
      "cladnetId": "cnabc",
      "name": "lab",`},
		{"GET", "/v1/cladnet/lab", "", 200, `"ipv4AddressSpace": "10.77.0.0/24"`},
		{"GET", "/v1/cladnet/lab/peer/vm1", "", 200, `"self": true`},
		{"GET", "/v1/cladnet/other/peer", "", 404, `"error"`},
		{"GET", "/v1/cladnet/cnabc/peer/nobody", "", 404, `not a member`},
		{"PUT", "/v1/cladnet/cnabc/peer/vm1/details", `{"cloudInformation":{"providerName":"aws"}}`, 200, `"providerName": "aws"`},
		{"PUT", "/v1/cladnet/cnabc/peer/vm2/details", `{"cloudInformation":{}}`, 403, `"error"`},
		{"PUT", "/v1/cladnet/cnabc/peer/vm1/details", `{"cloudInfo":{}}`, 400, `unknown field`},
		{"PUT", "/v1/cladnet/cnabc/peer/vm1/details", `{}`, 400, `cloudInformation`},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4CIDRs":["192.168.1.0/24"],"hosts":3}`, 200, `"recommendedIPv4PrivateAddressSpace": "10.0.0.0/29",
  "recommendedIpv4PrivateAddressSpace": "10.0.0.0/29"`},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4CIDRs":["nope"],"hosts":3}`, 400, `not a CIDR`},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4CIDRs":[],"hosts":-2}`, 400, `"error"`},
		{"POST", "/v1/ping", `{"target":"x"}`, 404, `"error"`},
		{"PUT", "/v1/cladnet/cnabc/rules", `{}`, 400, `"error"`},
		{"GET", "/v1/cladnet/cnabc/peer/vm2/networkingRule", "", 403, `"error"`},
		{"GET", "/metrics", "", 200, "cbnode_members 1"},
		{"GET", "/nowhere", "", 404, `"error": "no such endpoint`},
		{"DELETE", "/v1/status", "", 405, `not allowed`},
		{"GET", "/", "", 200, "<title>cbnode</title>"},
	} {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.contains)
		}
	}
	// The OpenAPI document is valid JSON and describes every /v1 route.
	code, body := do("GET", "/openapi.json", "")
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("openapi.json: %d %q", code, body)
	}
	for _, p := range []string{"/v1/status", "/v1/cladnet/{cladnetId}/peer", "/v1/cladnet/{cladnetId}/peer/{hostId}/details",
		"/v1/cladnet/{cladnetId}/peer/{hostId}/networkingRule", "/v1/cladnet/{cladnetId}/rules", "/v1/cladnet/{cladnetId}/cost",
		"/v1/cladnet/availableIPv4AddressSpaces", "/v1/ping"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
}
