package tumblebug_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/tumblebug"
)

// scriptedNode answers deploy's commands as a fresh node would, running
// nothing: the probe finds nothing installed, 'cbnode key' prints a peer
// ID, the report shows a member with paths to the others.
func scriptedNode(id, ip string, others map[string]string) func(ctx context.Context, home, command string) (string, error) {
	return func(_ context.Context, home, command string) (string, error) {
		switch {
		case strings.Contains(command, "cbnode-deploy bin="): // probe
			return "cbnode-deploy bin=\ncbnode-deploy token=\n", nil
		case strings.Contains(command, "key --state-dir"):
			return "cbnode-deploy peer=12D3KooW" + strings.ReplaceAll(id, "-", "") + "\n", nil
		case strings.Contains(command, "networking-rule"): // report
			var rules []string
			for h, addr := range others {
				if h != id {
					rules = append(rules, fmt.Sprintf(`{"hostName":%q,"peerScope":"intra","selectedIp":%q}`, h, addr))
				}
			}
			return fmt.Sprintf(`cbnode-deploy status={"cladnetId":"cn1","hostName":%q,"ip":%q}`+"\ncbnode-deploy rule={\"rules\":[%s]}\n",
				id, ip, strings.Join(rules, ",")), nil
		}
		return "", nil
	}
}

const ownerKey = "q8dNbi9IbUVs0Wd0n9kSx3OaSb4zwYe8FdW6YbSxJ5E="

// memOperator is an operator in memory: one CLADNet, tokens, revocations.
type memOperator struct {
	mu      sync.Mutex
	created bool
	calls   []string
	tokens  map[string]string // host -> token
	revoked []string          // peer IDs
}

func (o *memOperator) Do(_ context.Context, method, path string, in, out any) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, method+" "+path)
	spec := api.CLADNetSpecification{ID: "cn1", Name: "infra01", IPv4AddressSpace: "172.16.0.0/23", RuleType: "cost-prioritized", OwnerKey: ownerKey}
	var answer any
	switch {
	case method == "GET" && path == "/v1/cladnet/infra01":
		if !o.created {
			return &api.StatusError{Code: http.StatusNotFound, Msg: "no CLADNet infra01"}
		}
		answer = spec
	case method == "POST" && path == "/v1/cladnet":
		b, _ := json.Marshal(in)
		if !strings.Contains(string(b), `"ipv4Cidrs":["10.0.0.0/16","10.0.0.0/8","10.0.1.0/24"]`) {
			return &api.StatusError{Code: http.StatusBadRequest, Msg: "unexpected body " + string(b)}
		}
		o.created, answer = true, spec
	case method == "POST" && path == "/v1/cladnet/cn1/token":
		req := in.(map[string]any)
		if req["peerId"] == "" || req["replace"] != true {
			return &api.StatusError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("token request %v", req)}
		}
		tok := fmt.Sprintf("TOKEN-%s-%s-secret", req["hostName"], req["peerId"])
		o.tokens[req["hostName"].(string)] = tok
		answer = map[string]string{"token": tok}
	case method == "POST" && path == "/v1/cladnet/cn1/revocation":
		req := in.(map[string]string)
		o.revoked = append(o.revoked, req["peerId"])
		answer = map[string]any{"version": len(o.revoked), "entries": []map[string]string{{"peerId": req["peerId"]}}}
	case method == "GET" && path == "/v1/cladnet/cn1/peer":
		answer = api.Peers{Peers: []api.Peer{}}
	default:
		return &api.StatusError{Code: http.StatusNotFound, Msg: "no route " + method + " " + path}
	}
	b, _ := json.Marshal(answer)
	return json.Unmarshal(b, out)
}

// TestApplyInProcess drives a whole deploy (apply, not plan) through the
// stand-in and an in-memory operator, nodes in parallel, then a scale-in:
// what reaches Tumblebug, the operator and the nodes' staging directories.
func TestApplyInProcess(t *testing.T) {
	s, _ := standIn(t)
	addrs := map[string]string{"g1-1": "10.0.1.5", "g1-2": "10.0.1.6"}
	for _, id := range []string{"g1-1", "g1-2"} {
		home := nodeHome(t, s, id)
		info := infoOf(t, s, id)
		s.AddNode("ns", "infra01", nodeWith(info, home, scriptedNode(id, "172.16.0."+id[3:], addrs)))
	}
	c, _ := tumblebug.NewClient(s.URL(), "u", "p")
	op := &memOperator{tokens: map[string]string{}}
	state := filepath.Join(t.TempDir(), "state.json")
	cfg := tumblebug.Config{TB: c, Op: op, OperatorURL: "http://op", NS: "ns", Infra: "infra01",
		Layout: tumblebug.Layout{Service: tumblebug.ServiceSystemd, Sudo: "sudo", Port: 7460, BootstrapPort: 7461},
		Binary: tinyELF(t), Unit: "[Unit]\n", StateFile: state, Parallel: 4}
	var out bytes.Buffer
	cfg.Out = &out
	res, err := tumblebug.Run(ctx(t), cfg)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	if res.CladnetID != "cn1" || len(res.Rows) != 2 || len(res.Bootstrap) != 1 ||
		res.Bootstrap[0] != "/ip4/203.0.113.5/tcp/7461/p2p/12D3KooWg11" {
		t.Fatalf("result %+v\n%s", res, out.String())
	}
	for _, want := range []string{"cladnet infra01: created 172.16.0.0/23", "firewall sg-1: opened inbound TCP 7460,7461, UDP 7460,7461",
		"g1-1: install binary, write unit, start bootstrap, write env, issue token, start cbnode: done",
		"g1-2: install binary, write unit, write env, issue token, start cbnode: done", "all 2 nodes are members",
		"g1-1  g1-1  172.16.0.1", "g1-2 intra 10.0.1.6", "WARNING: the operator sees none of the members"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The token went as a file, the one the operator issued for the
	// node's own peer ID; no command carries it.
	hist := strings.Join(s.History(), "\n")
	for id, tok := range op.tokens {
		b, err := os.ReadFile(filepath.Join(nodeHome(t, s, id), ".cbnode-deploy", "token"))
		if err != nil || strings.TrimSpace(string(b)) != tok {
			t.Errorf("%s: staged token %q %v, want %q", id, b, err, tok)
		}
		if strings.Contains(hist, tok) {
			t.Errorf("%s: token in the command history", id)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(nodeHome(t, s, "g1-1"), ".cbnode-deploy", "cbnode-bootstrap.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/cbnode bootstrap --state-dir /var/lib/cbnode-bootstrap --port 7461 --announce 203.0.113.5 --relay --cladnet-owner "+ownerKey+"\n") {
		t.Errorf("the bootstrap node's unit:\n%s", unit)
	}
	if len(op.tokens) != 2 {
		t.Errorf("tokens issued: %v", op.tokens)
	}
	env, _ := os.ReadFile(filepath.Join(nodeHome(t, s, "g1-2"), ".cbnode-deploy", "env"))
	for _, line := range []string{"CBNODE_CLADNET=infra01", "CBNODE_PROVIDER=aws", "CBNODE_PRIVATE_IP=10.0.1.6", "CBNODE_BOOTSTRAP=/ip4/203.0.113.5/tcp/7461/p2p/12D3KooWg11"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("g1-2 env lacks %s:\n%s", line, env)
		}
	}
	st, err := tumblebug.LoadState(state)
	if err != nil || st.CladnetID != "cn1" || st.Nodes["g1-2"].PeerID != "12D3KooWg12" || st.Nodes["g1-1"].Host != "g1-1" {
		t.Fatalf("state %+v %v", st, err)
	}

	// A suspended node is skipped, not revoked.
	info := infoOf(t, s, "g1-2")
	info.Status = "Suspended"
	s.AddNode("ns", "infra01", nodeWith(info, nodeHome(t, s, "g1-2"), scriptedNode("g1-2", "172.16.0.2", addrs)))
	out.Reset()
	if _, err := tumblebug.Run(ctx(t), cfg); err != nil || len(op.revoked) != 0 || !strings.Contains(out.String(), "skipped (not running): g1-2 (Suspended)") {
		t.Fatalf("suspended node: %v, revoked %v:\n%s", err, op.revoked, out.String())
	}

	// Scale-in: g1-2 leaves; its peer is revoked and the list handed to g1-1.
	s.RemoveNode("ns", "infra01", "g1-2")
	out.Reset()
	if _, err := tumblebug.Run(ctx(t), cfg); err != nil {
		t.Fatalf("scale-in: %v\n%s", err, out.String())
	}
	if len(op.revoked) != 1 || op.revoked[0] != "12D3KooWg12" || !strings.Contains(out.String(), "revoked g1-2 (host g1-2, peer 12D3KooWg12): gone from the infra; list handed to g1-1") {
		t.Fatalf("revoked %v:\n%s", op.revoked, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(nodeHome(t, s, "g1-1"), ".cbnode-deploy", "revocations.json")); err != nil || !strings.Contains(string(b), "12D3KooWg12") {
		t.Fatalf("revocation list on g1-1: %q %v", b, err)
	}
	if st, _ := tumblebug.LoadState(state); len(st.Nodes) != 1 || st.Revoked["g1-2"].PeerID != "12D3KooWg12" {
		t.Fatalf("state after scale-in: %+v", st)
	}
}
