//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
	"github.com/cloud-barista/cbnode/operator"
)

// opClient talks HTTP to the operator's API on 127.0.0.1:7480 inside the
// operator's namespace: every connection is dialed from a thread that has
// entered that namespace (netlab Host.Exec), so the test reaches exactly
// what a client on the operator's machine reaches.
type opClient struct {
	t    *testing.T
	base string
	http *http.Client

	mu    sync.Mutex
	calls []opCall // every answered request, in order
}

// opCall is one request the test sent and the status it got.
type opCall struct {
	method, path string
	code         int
}

// routeTable renders the distinct (method, route, status) of the calls
// made, with the concrete IDs replaced by the route's parameter names
// (ids: concrete value → "{name}").
func (o *opClient) routeTable(ids map[string]string) string {
	var pairs []string
	for v, name := range ids {
		if v != "" {
			pairs = append(pairs, v, name)
		}
	}
	r := strings.NewReplacer(pairs...)
	seen := map[string]bool{}
	var b strings.Builder
	b.WriteString("| request (this run) | status |\n|---|---|\n")
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.calls {
		row := fmt.Sprintf("| `%s %s` | %d |\n", c.method, r.Replace(c.path), c.code)
		if !seen[row] {
			seen[row] = true
			b.WriteString(row)
		}
	}
	return b.String()
}

func newOpClient(t *testing.T, h *netlab.Host) *opClient {
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := h.Exec(func() (err error) {
				var d net.Dialer
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &opClient{t: t, base: "http://" + operator.DefaultAddr, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// do sends method path with body (JSON-encoded unless nil) and decodes a
// 2xx answer into out (if not nil); it returns the status and the raw body.
func (o *opClient) do(method, path string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, o.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	o.mu.Lock()
	o.calls = append(o.calls, opCall{method, path, resp.StatusCode})
	o.mu.Unlock()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, fmt.Errorf("%s %s: decode %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, b, nil
}

// must is do that fails the test unless the answer has status want.
func (o *opClient) must(want int, method, path string, body, out any) []byte {
	o.t.Helper()
	code, b, err := o.do(method, path, body, out)
	if err != nil {
		o.t.Fatal(err)
	}
	if code != want {
		o.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// pingOnce sends one echo request over cbnet0 and waits up to 300 ms (the
// lab's round trips are below a millisecond).
func pingOnce(from *cluster.Node, to netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := from.Host.Run(ctx, "ping", "-c", "1", "-W", "0.3", "-I", "cbnet0", to.String())
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w: %s", to, from.Name, err, out)
	}
	return nil
}

type pair struct{ from, to *cluster.Node }

func pairsOf(nodes []*cluster.Node) []pair {
	var ps []pair
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				ps = append(ps, pair{a, b})
			}
		}
	}
	return ps
}

// waitPings sends one ping per pair, all pairs at once, round after round,
// until in two rounds in a row every pair's ping succeeds (want true) or
// fails (want false). It returns when the first of the two rounds started,
// counted from t0: at that moment traffic was already in the wanted state
// on every pair.
func waitPings(pairs []pair, addr map[*cluster.Node]netip.Addr, want bool, t0 time.Time, within time.Duration) (time.Duration, error) {
	var first time.Time // start of the last round in the wanted state
	for {
		start := time.Now()
		errs := make([]error, len(pairs))
		var wg sync.WaitGroup
		for i, p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = pingOnce(p.from, addr[p.to])
			}()
		}
		wg.Wait()
		var last string
		done := true
		for i, err := range errs {
			if (err == nil) != want {
				done = false
				last = fmt.Sprintf("%s -> %s: %v", pairs[i].from.Name, pairs[i].to.Name, err)
			}
		}
		switch {
		case done && !first.IsZero():
			return first.Sub(t0), nil
		case done:
			first = start
			continue
		default:
			first = time.Time{}
		}
		if time.Since(t0) > within {
			if want {
				return 0, fmt.Errorf("traffic not flowing on every pair after %s: %s", within, last)
			}
			return 0, fmt.Errorf("traffic still flowing after %s: %s answered", within, last)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// operatorLab is the operator tests' lab: a router lab with a WAN switch,
// a bootstrap node started on it, and a host for the operator (not
// started).
func operatorLab(ctx context.Context, t *testing.T, prefix string) (*cluster.Cluster, *netlab.Switch, *cluster.Node) {
	t.Helper()
	c := newRouterLab(t, cluster.Options{Prefix: prefix, External: true, LogLevel: "info"})
	wan, err := c.Lab.Switch("wan", wanNet)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := c.AddHost("boot", wan, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartBootstrap(ctx, boot); err != nil {
		t.Fatal(err)
	}
	opHost, err := c.AddHost("op", wan, 2)
	if err != nil {
		t.Fatal(err)
	}
	return c, wan, opHost
}

// TestOperatorEndToEnd drives a CLADNet through the operator's API only:
// a bootstrap node, the operator on its own host and three members, n3
// behind a NAT router (MASQUERADE). Create, issue tokens, join, list peers,
// change the rule type, run the connectivity test, DOWN/UP, revoke a
// member, kill the operator (the data plane goes on) and restart it from
// its DIR (same CLADNet, same members).
func TestOperatorEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, wan, opHost := operatorLab(ctx, t, "cbop")
	boot := c.Boot
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The operator: its own host, its DIR, the swarm through the bootstrap.
	opDir := filepath.Join(c.Dir, "operator")
	var opProc *netlab.Proc
	startOperator := func() {
		t.Helper()
		p, err := opHost.Host.Start(c.Bin, "operator", "--dir", opDir, "--bootstrap", c.BootAddr, "--log-level", "info")
		must(err)
		opProc = p
	}
	t.Cleanup(func() {
		if t.Failed() && opProc != nil {
			t.Logf("--- operator log (tail):\n%s", tail(opProc.Output(), 8000))
		}
	})
	op := newOpClient(t, opHost.Host)
	waitHealthy := func() {
		t.Helper()
		waitOperator(t, op, opProc)
	}
	startOperator()
	waitHealthy()

	// Members: n1, n2 on the WAN, n3 behind a MASQUERADE router.
	member := func(name string, sw *netlab.Switch, idx int, gw netip.Addr) *cluster.Node {
		n, err := c.AddHost(name, sw, idx)
		must(err)
		if gw.IsValid() {
			must(n.Host.SetDefaultRoute(gw))
		}
		return n
	}
	n1 := member("n1", wan, 11, netip.Addr{})
	n2 := member("n2", wan, 12, netip.Addr{})
	lan3, err := c.Lab.Switch("ln3", lanSame)
	must(err)
	r3, err := c.Lab.Router("rn3", wan, wan.Addr(21), lan3, lan3.Addr(1), netlab.Cone)
	must(err)
	n3 := member("n3", lan3, 10, r3.LANAddr().Addr())

	// Create the CLADNet through the API; bad input is refused.
	var spec api.CLADNetSpecification
	op.must(http.StatusOK, "POST", "/v1/cladnet", map[string]string{
		"name": "lab", "ipv4AddressSpace": "10.77.0.0/24", "description": "operator e2e", "ruleType": "basic",
	}, &spec)
	if spec.ID == "" || spec.IPv4AddressSpace != "10.77.0.0/24" || spec.RuleType != "basic" {
		t.Fatalf("created CLADNet: %+v", spec)
	}
	t.Logf("POST /v1/cladnet -> 200 %+v", spec)
	id := spec.ID
	// The bootstrap node now relays for the new CLADNet, so it also holds
	// its revocation list (restarted: same identity, same address).
	must(boot.Stop())
	c.RelayFor(spec.OwnerKey)
	must(c.StartBootstrap(ctx, boot))
	for _, bad := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/v1/cladnet/no-such-cladnet", nil, http.StatusNotFound},
		{"POST", "/v1/cladnet", map[string]string{"name": "bad", "ipv4AddressSpace": "10.77.0.0/33"}, http.StatusBadRequest},
		{"POST", "/v1/cladnet", map[string]string{"name": "lab", "ipv4AddressSpace": "10.78.0.0/24"}, http.StatusConflict},
		{"POST", "/v1/cladnet", map[string]string{"name": "other", "ipv4AddressSpace": "10.77.0.128/25"}, http.StatusConflict},
		{"GET", "/v1/control/cladnet/" + id + "/command/SIDEWAYS", nil, http.StatusBadRequest},
	} {
		code, b, err := op.do(bad.method, bad.path, bad.body, nil)
		must(err)
		var e api.Error
		if code != bad.want || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %s, want %d with a JSON message", bad.method, bad.path, code, b, bad.want)
		}
		t.Logf("%s %s -> %d %s", bad.method, bad.path, code, strings.TrimSpace(string(b)))
	}

	// Three tokens through the API, then the members join with them.
	for _, n := range []*cluster.Node{n1, n2, n3} {
		var tok operator.TokenResponse
		op.must(http.StatusOK, "POST", "/v1/cladnet/"+id+"/token", map[string]string{"hostName": n.Name, "ttl": "1h"}, &tok)
		if tok.Token == "" || tok.HostName != n.Name || tok.CladnetID != id {
			t.Fatalf("token for %s: %+v", n.Name, tok)
		}
		n.TokenFile = filepath.Join(c.Dir, n.Name+".token")
		must(os.WriteFile(n.TokenFile, []byte(tok.Token), 0o600))
		c.Nodes = append(c.Nodes, n)
	}
	started := time.Now()
	must(c.StartAll())
	membersConverge(t, c, 60*time.Second)
	addr := ips(t, c)

	// The operator lists the three members, each tunneling with its address.
	hostID := map[string]string{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ps api.Peers
		op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/peer", nil, &ps)
		ok := len(ps.Peers) == 3
		for _, p := range ps.Peers {
			hostID[p.HostName] = p.HostID
			if p.State != "tunneling" || p.IP == "" {
				ok = false
			}
		}
		if ok {
			var b strings.Builder
			for _, p := range ps.Peers {
				fmt.Fprintf(&b, "\n  %s %s %s %s", p.HostName, p.IP, p.State, p.HostID)
			}
			t.Logf("GET /v1/cladnet/{id}/peer (%s after the members started):%s", ms(time.Since(started)), b.String())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator does not list 3 tunneling members: %+v", ps.Peers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	all := pairsOf(c.Nodes)
	if _, err := waitPings(all, addr, true, time.Now(), 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// PUT ruleType: the members' networking rule follows.
	var upd api.CLADNetSpecification
	op.must(http.StatusOK, "PUT", "/v1/cladnet/"+id, map[string]string{"ruleType": "cost-prioritized"}, &upd)
	if upd.RuleType != "cost-prioritized" {
		t.Fatalf("PUT answered %+v", upd)
	}
	put := time.Now()
	for _, n := range c.Nodes {
		for {
			var nr api.NetworkingRule
			err := n.CLIJSON(ctx, &nr, "networking-rule")
			if err == nil && nr.RuleType == "cost-prioritized" {
				t.Logf("rule type on %s (cbnode networking-rule): cost-prioritized %s after the PUT", n.Name, ms(time.Since(put)))
				break
			}
			if time.Since(put) > 15*time.Second {
				t.Fatalf("%s: networking rule %+v (%v) 15 s after PUT ruleType cost-prioritized", n.Name, nr, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var nr api.NetworkingRule
	op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/peer/"+hostID["n3"]+"/networkingRule", nil, &nr)
	if nr.RuleType != "cost-prioritized" || !slices.Contains(nr.HostName, "n1") || !slices.Contains(nr.HostName, "n2") {
		t.Errorf("GET .../peer/n3/networkingRule: %+v, want cost-prioritized with paths to n1 and n2", nr)
	}
	t.Logf("GET .../peer/{n3}/networkingRule: ruleType %s, peers %v, selected %v", nr.RuleType, nr.HostName, nr.SelectedIP)

	// The connectivity test: a 3x3 matrix, every off-diagonal pair measured.
	var res operator.TestResult
	op.must(http.StatusOK, "POST", "/v1/test/cladnet/"+id+"/type/CONNECTIVITY",
		map[string]any{"testSpec": map[string]any{"trialCount": 5, "interval": "100ms"}}, &res)
	t.Logf("connectivity test %s: %s\n%s", res.RunID, res.Message, matrixTable(res))
	if !res.IsSucceeded || len(res.Hosts) != 3 || len(res.Results.InterHostNetworkStatus) != 6 {
		t.Fatalf("test: succeeded=%v, %d hosts, %d pairs, want 3 hosts and 6 pairs: %s", res.IsSucceeded, len(res.Hosts), len(res.Results.InterHostNetworkStatus), res.Message)
	}
	for _, s := range res.Results.InterHostNetworkStatus {
		if !s.Measured || s.PacketsReceive == 0 || s.SourceName == s.DestinationName {
			t.Errorf("pair %s -> %s not measured: %+v", s.SourceName, s.DestinationName, s)
		}
	}

	sample, _ := json.MarshalIndent(res.Results.InterHostNetworkStatus[0], "", "  ")
	t.Logf("one pair of the matrix (JSON):\n%s", sample)
	// The kept runs, and the CLI's table ('cbnode test', a thin client).
	var runs map[string]any
	op.must(http.StatusOK, "GET", "/v1/test/cladnet/"+id, nil, &runs)
	var again operator.TestResult
	op.must(http.StatusOK, "GET", "/v1/test/cladnet/"+id+"/run/"+res.RunID, nil, &again)
	if again.RunID != res.RunID || len(again.Results.InterHostNetworkStatus) != 6 {
		t.Errorf("GET .../run/%s: %+v", res.RunID, again)
	}
	testOut, err := opHost.Host.Run(ctx, c.Bin, "test", "lab", "--trials", "5", "--interval", "100ms")
	if err != nil {
		t.Fatalf("cbnode test lab: %v: %s", err, testOut)
	}
	t.Logf("cbnode test lab (on the operator's host):\n%s", testOut)
	// The other read routes, and details injected for n1 (the operator
	// signs them, n1 adopts them).
	op.must(http.StatusOK, "GET", "/openapi.json", nil, nil)
	op.must(http.StatusOK, "POST", "/v1/cladnet/availableIPv4AddressSpaces", map[string]any{"ipv4Cidrs": []string{"192.168.1.0/24", "10.0.1.0/24"}}, nil)
	op.must(http.StatusOK, "GET", "/v1/cladnet/"+id, nil, nil)
	op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/rules", nil, nil)
	op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/peer/"+hostID["n1"], nil, nil)
	t0Details := time.Now()
	op.must(http.StatusOK, "PUT", "/v1/cladnet/"+id+"/peer/"+hostID["n1"]+"/details",
		map[string]any{"cloudInformation": map[string]any{"providerName": "lab", "regionId": "lab-east-1"}}, nil)
	op.must(http.StatusNotFound, "PUT", "/v1/cladnet/"+id+"/peer/nosuch/details",
		map[string]any{"cloudInformation": map[string]any{"regionId": "x"}}, nil)
	op.must(http.StatusBadRequest, "POST", "/v1/test/cladnet/"+id+"/type/IPERF", nil, nil)
	op.must(http.StatusBadRequest, "GET", "/v1/control/cladnet/"+id+"/command/ENABLE_ENCRYPTION", nil, nil)
	op.must(http.StatusNotFound, "POST", "/v1/test/cladnet/no-such-cladnet/type/CONNECTIVITY", nil, nil)
	for {
		// n2 sees n1's announcement with the injected facts.
		ps, err := memberPeers(ctx, n2)
		region := ""
		for _, p := range ps {
			if p.HostName == "n1" {
				region = p.Details.RegionID
			}
		}
		if region == "lab-east-1" {
			t.Logf("details injected for n1 through the operator: n2 sees region %s %s after the PUT", region, ms(time.Since(t0Details)))
			break
		}
		if time.Since(t0Details) > 10*time.Second {
			t.Fatalf("n2 sees n1 in region %q 10 s after PUT .../details (%v)", region, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// DOWN stops cbnet0 traffic on every member, UP brings it back.
	var ctl operator.ControlResponse
	t0 := time.Now()
	op.must(http.StatusOK, "POST", "/v1/control/cladnet/"+id+"/command/DOWN", nil, &ctl)
	down, err := waitPings(all, addr, false, t0, 15*time.Second)
	must(err)
	t1 := time.Now()
	op.must(http.StatusOK, "GET", "/v1/control/cladnet/"+id+"/command/UP", nil, &ctl)
	up, err := waitPings(all, addr, true, t1, 15*time.Second)
	must(err)

	// Revoke n3 in the operator's DIR, push the list on n1: n3's traffic
	// stops, the members drop it, and its old token is refused.
	revFile := filepath.Join(c.Dir, "revocations.json")
	out, err := opHost.Host.Run(ctx, c.Bin, "cladnet", "revoke", "lab", "--dir", opDir, "--host", "n3", "--reason", "e2e", "--out", revFile)
	must(err)
	t.Logf("cbnode cladnet revoke: %s", lastLine(out))
	t2 := time.Now()
	out, err = n1.CLI(ctx, "revocation", "push", revFile)
	must(err)
	t.Logf("cbnode revocation push (on n1): %s", lastLine(out))
	cut, err := waitPings([]pair{{n3, n1}, {n3, n2}, {n1, n3}, {n2, n3}}, addr, false, t2, 5*time.Second)
	must(err)
	rest := []*cluster.Node{n1, n2}
	for _, n := range rest {
		for {
			ps, err := memberPeers(ctx, n)
			if err == nil && len(ps) == 2 && !hasHost(ps, "n3") {
				break
			}
			if time.Since(t2) > 5*time.Second {
				t.Fatalf("%s still lists n3 5 s after the revocation: %+v %v", n.Name, ps, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	const cutMsg = "was revoked by the CLADNet owner: ask the operator for a new join token"
	if err := waitExit(t, n3.Proc, 10*time.Second); err == nil || !strings.Contains(string(n3.Proc.Output()), cutMsg) {
		t.Errorf("revoked n3: exit %v, want non-zero and %q in its log", err, cutMsg)
	}
	t.Logf("revoked n3 exited: %s", grepLine(n3.Proc.Output(), "was revoked"))
	c.Nodes = rest
	if _, err := waitPings(pairsOf(rest), addr, true, time.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Rejoin with the old token, with its state dir (as after a reboot):
	// refused, with a clear message.
	const refusal = "is revoked: ask the operator for a new join token"
	must(c.Start(n3))
	err = waitExit(t, n3.Proc, 30*time.Second)
	if out := string(n3.Proc.Output()); err == nil || !strings.Contains(out, refusal) {
		t.Fatalf("rejoin with the revoked token: exit %v, want non-zero and %q:\n%s", err, refusal, out)
	}
	t.Logf("rejoin with the old token: %v: %s", err, grepLine(n3.Proc.Output(), refusal))
	// With a fresh state dir (a new VM holding the old token) the members
	// refuse it — they do not list it, and no packet of its gets through —
	// and the bootstrap node, which holds the revocation list, hands it
	// over on join: n3 stops with exit code 3 and the same advice.
	n3.StateDir = filepath.Join(c.Dir, "state-n3-fresh")
	must(c.Start(n3))
	joined := time.Now()
	err = waitExit(t, n3.Proc, 20*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(n3.Proc.Output()), cutMsg) {
		t.Fatalf("revoked n3 from a fresh state dir: exit %v, want code 3 and %q:\n%s", err, cutMsg, tail(n3.Proc.Output(), 3000))
	}
	freshExit := time.Since(joined)
	t.Logf("rejoin with the old token, fresh state dir: told by the bootstrap node, exit code 3 %s after the start: %s", ms(freshExit), grepLine(n3.Proc.Output(), "was revoked"))
	for _, n := range rest {
		if ps, err := memberPeers(ctx, n); err != nil || hasHost(ps, "n3") {
			t.Errorf("%s lists the revoked n3 rejoining from a fresh state dir: %+v %v", n.Name, ps, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(boot.StateDir, id, "revocations.json")); err != nil || !strings.Contains(string(b), `"hostName": "n3"`) {
		t.Errorf("the bootstrap node's saved revocation list: %v %s", err, b)
	}
	n3.Proc = nil

	// Its address is free: a new member (fresh token from the API, behind
	// the same NAT) asks for exactly that address and gets it.
	n4 := member("n4", lan3, 11, r3.LANAddr().Addr())
	var tok4 operator.TokenResponse
	op.must(http.StatusOK, "POST", "/v1/cladnet/"+id+"/token", map[string]string{"hostName": "n4", "ttl": "1h"}, &tok4)
	n4.TokenFile = filepath.Join(c.Dir, "n4.token")
	must(os.WriteFile(n4.TokenFile, []byte(tok4.Token), 0o600))
	n4.Args = []string{"--ip", addr[n3].String()}
	c.Nodes = append(c.Nodes, n4)
	must(c.Start(n4))
	membersConverge(t, c, 30*time.Second)
	if got, err := n4.IP(ctx); err != nil || got != addr[n3] {
		t.Fatalf("n4 asked for n3's freed address %s, got %v (%v)", addr[n3], got, err)
	}
	addr[n4] = addr[n3]
	t.Logf("n4 took revoked n3's address %s", addr[n4])
	if _, err := waitPings(pairsOf(c.Nodes), addr, true, time.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// The operator killed (SIGKILL): the data plane does not notice, over
	// longer than the members take to drop the operator (3 heartbeats).
	must(opProc.Kill())
	killed := time.Now()
	var wg sync.WaitGroup
	for _, p := range pairsOf(c.Nodes) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			out, err := p.from.Host.Run(ctx, "ping", "-c", "25", "-i", "0.2", "-W", "1", "-I", "cbnet0", addr[p.to].String())
			if err != nil || !strings.Contains(string(out), " 0% packet loss") {
				t.Errorf("%s -> %s with the operator dead: %v: %s", p.from.Name, p.to.Name, err, out)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	membersConverge(t, c, 5*time.Second)
	t.Logf("operator dead for %s: 25 pings on each of the 6 pairs, 0%% loss; members still converged", ms(time.Since(killed)))

	// Restarted from the same DIR: the same CLADNet, the remaining members
	// (learned afresh from the gossip: first seen after the restart).
	restart := time.Now().Add(-time.Second) // the clocks are one, the stamps second-rounded at worst
	startOperator()
	waitHealthy()
	var list api.CLADNetSpecifications
	op.must(http.StatusOK, "GET", "/v1/cladnet", nil, &list)
	if len(list.CLADNetSpecifications) != 1 || list.CLADNetSpecifications[0].ID != id ||
		list.CLADNetSpecifications[0].RuleType != "cost-prioritized" {
		t.Fatalf("after the restart: %+v, want only %s (cost-prioritized)", list.CLADNetSpecifications, id)
	}
	restarted := time.Now()
	for {
		var all api.Peers
		op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/peer", nil, &all)
		fresh, revokedN3 := true, false
		var ps api.Peers
		for _, p := range all.Peers {
			if p.State == api.StateRevoked {
				revokedN3 = revokedN3 || p.HostName == "n3"
				continue
			}
			ps.Peers = append(ps.Peers, p)
			fresh = fresh && p.FirstSeen.After(restart) && p.State == "tunneling"
		}
		if fresh && revokedN3 && len(ps.Peers) == 3 && hasHost(ps.Peers, "n1") && hasHost(ps.Peers, "n2") && hasHost(ps.Peers, "n4") {
			t.Logf("restarted operator lists n1, n2, n4 %s after it came up, and n3 as revoked", ms(time.Since(restarted)))
			break
		}
		if time.Since(restarted) > 30*time.Second {
			t.Fatalf("restarted operator lists %+v, want n1, n2 and n4, and n3 as revoked", all.Peers)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Revocation through the API: POST .../revocation for n4 — signed,
	// gossiped by the operator; n4's traffic stops both ways and it exits
	// with code 3; the list is version 2.
	n4pairs := []pair{{n4, n1}, {n4, n2}, {n1, n4}, {n2, n4}}
	t3 := time.Now()
	var revs struct {
		Version uint64 `json:"version"`
		Entries []struct {
			HostName string `json:"hostName"`
		} `json:"entries"`
	}
	op.must(http.StatusOK, "POST", "/v1/cladnet/"+id+"/revocation", map[string]string{"hostName": "n4", "reason": "e2e through the API"}, &revs)
	cutAPI, err := waitPings(n4pairs, addr, false, t3, 5*time.Second)
	must(err)
	if err := waitExit(t, n4.Proc, 10*time.Second); err == nil {
		t.Errorf("revoked n4 exited with code 0")
	}
	n4.Proc = nil
	op.must(http.StatusOK, "GET", "/v1/cladnet/"+id+"/revocation", nil, &revs)
	if revs.Version != 2 || len(revs.Entries) != 2 {
		t.Errorf("GET .../revocation: %+v, want version 2 with n3 and n4", revs)
	}
	c.Nodes = rest
	op.must(http.StatusConflict, "POST", "/v1/cladnet/"+id+"/revocation", map[string]string{"hostName": "n4"}, nil)

	// DELETE dissolves the CLADNet: every member leaves and exits with
	// code 3; the owner key is archived.
	op.must(http.StatusOK, "DELETE", "/v1/cladnet/"+id, nil, nil)
	deleted := time.Now()
	for _, n := range c.Nodes {
		err := waitExit(t, n.Proc, 15*time.Second)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(n.Proc.Output()), "dissolved by its owner") {
			t.Errorf("%s after DELETE: exit %v, want code 3 and \"dissolved by its owner\":\n%s", n.Name, err, tail(n.Proc.Output(), 2000))
		}
		n.Proc = nil
	}
	t.Logf("DELETE /v1/cladnet/{id}: n1 and n2 exited with code 3 within %s", ms(time.Since(deleted)))
	op.must(http.StatusNotFound, "GET", "/v1/cladnet/"+id, nil, nil)

	ids := map[string]string{id: "{cladnetId}", res.RunID: "{runId}"}
	for _, n := range []string{"n1", "n2", "n3"} {
		ids[hostID[n]] = "{hostId:" + n + "}"
	}
	ids["/peer/n4"] = "/peer/{hostId:n4}"
	t.Logf("endpoint table (every request this test sent the operator):\n%s", op.routeTable(ids))
	t.Logf("\n| measured (from the API call / the push) | time |\n|---|---|\n"+
		"| DOWN: cbnet0 traffic stopped on all 6 pairs | ≤ %s |\n"+
		"| UP: cbnet0 traffic back on all 6 pairs | ≤ %s |\n"+
		"| revocation push → revoked n3 cut off both ways | ≤ %s |\n"+
		"| POST .../revocation (n4) → n4 cut off both ways | ≤ %s |\n"+
		"| revoked n3 restarted from a fresh state dir → told by the bootstrap node, exit 3 | %s |", ms(down), ms(up), ms(cut), ms(cutAPI), ms(freshExit))
}

// memberPeers is 'cbnode peers' on n without the operator, which members
// list too (it takes part in the gossip, with no address and no tunnel).
func memberPeers(ctx context.Context, n *cluster.Node) ([]api.Peer, error) {
	ps, err := n.Peers(ctx)
	var out []api.Peer
	for _, p := range ps {
		if p.HostName != operator.OperatorHost {
			out = append(out, p)
		}
	}
	return out, err
}

// membersConverge is Cluster.WaitConverged leaving the operator out: every
// running member sees every running member with an address, tunneling.
func membersConverge(t *testing.T, c *cluster.Cluster, within time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		err := func() error {
			for _, n := range c.Nodes {
				if n.Proc.Exited() {
					return fmt.Errorf("%s exited: %s", n.Name, n.Proc.Output())
				}
				ps, err := memberPeers(context.Background(), n)
				if err != nil {
					return err
				}
				if len(ps) != len(c.Nodes) {
					return fmt.Errorf("%s sees %d members, want %d", n.Name, len(ps), len(c.Nodes))
				}
				for _, p := range ps {
					if p.IP == "" || p.State != "tunneling" {
						return fmt.Errorf("%s sees %s without an address or not tunneling (%q)", n.Name, p.HostName, p.State)
					}
				}
			}
			return nil
		}()
		if err == nil {
			t.Logf("members converged in %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > within {
			t.Fatalf("not converged after %s: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasHost(ps []api.Peer, name string) bool {
	for _, p := range ps {
		if p.HostName == name {
			return true
		}
	}
	return false
}

// waitExit waits for p to end and returns its exit error (nil: exit 0);
// it fails the test if p still runs after within.
func waitExit(t *testing.T, p *netlab.Proc, within time.Duration) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Wait()
	case <-time.After(within):
		t.Fatalf("%s still running after %s:\n%s", p, within, tail(p.Output(), 4000))
		return nil
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func grepLine(b []byte, s string) string {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return "(no line with " + s + ")"
}

// matrixTable renders the connectivity test as a table: one row per
// source, one column per destination, avg RTT and loss.
func matrixTable(r operator.TestResult) string {
	var names []string
	for _, h := range r.Hosts {
		names = append(names, h.HostName)
	}
	sort.Strings(names)
	cell := map[[2]string]operator.InterHostNetworkStatus{}
	for _, s := range r.Results.InterHostNetworkStatus {
		cell[[2]string{s.SourceName, s.DestinationName}] = s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| from \\ to |")
	for _, n := range names {
		fmt.Fprintf(&b, " %s |", n)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("---|", len(names)))
	for _, from := range names {
		fmt.Fprintf(&b, "| %s |", from)
		for _, to := range names {
			s, ok := cell[[2]string{from, to}]
			switch {
			case from == to:
				b.WriteString(" — |")
			case !ok:
				b.WriteString(" missing |")
			default:
				fmt.Fprintf(&b, " %.2f/%.2f/%.2f ms, %d/%d, %.0f%% loss |", s.MinRTTMs, s.AvgRTTMs, s.MaxRTTMs, s.PacketsReceive, s.PacketsSent, s.LossPercent)
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("(min/avg/max RTT, replies/probes, loss)")
	return b.String()
}
