package operator_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/operator"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

// startMemberIn is startMember with a given state directory (a restart
// keeps it).
func startMemberIn(t *testing.T, token, state string) *member {
	t.Helper()
	tok, err := cladnet.DecodeToken(token)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tok.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	boot, err := node.ParseBootstrap(tok.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan *forwardtest.Device, 1)
	m, err := daemon.Start(context.Background(), daemon.Config{
		Token: tok, Key: key, StateDir: state, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot,
		Heartbeat: 500 * time.Millisecond, MissedHeartbeats: 4, Lease: time.Hour,
		Cloud: cost.CloudInfo{ProviderName: "aws", RegionID: "us-east-1", PublicIP: "127.0.0.1"},
		TUN:   true, OpenDevice: func(name string, mtu int) (daemon.Device, error) {
			d := forwardtest.NewDevice(name, mtu)
			opened <- d
			return d, nil
		},
		Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("start %s: %v", tok.Cert.HostName, err)
	}
	t.Cleanup(m.Stop)
	return &member{name: tok.Cert.HostName, m: m, dev: <-opened}
}

// blocked checks that a packet from a to b is not delivered.
func blocked(a, b *member, seq uint32) error {
	if err := a.dev.Inject(packet(a.m.IP(), b.m.IP(), seq), time.Second); err != nil {
		return err
	}
	if got, err := b.dev.Recv(300 * time.Millisecond); err == nil {
		return fmt.Errorf("%s -> %s delivered while down: % x", a.name, b.name, got[:20])
	}
	return nil
}

func adminDown(mb *member) uint64 {
	var n uint64
	for _, st := range mb.m.PeerStats() {
		n += st.Drops["admin_down"]
	}
	return n
}

func allPairs(ms []*member, f func(a, b *member) error) error {
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				if err := f(a, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// TestTestAndControl: operator + bootstrap + 3 members in-process. The
// connectivity test returns the full 3×3 matrix with paths (JSON and CSV,
// kept and readable later); DOWN stops packets between all members
// (counted as admin_down), survives a member's restart; UP restores them.
func TestTestAndControl(t *testing.T) {
	_, boot := startBootstrap(t)
	op := startOp(t, t.TempDir(), func(c *operator.Config) {
		c.Bootstrap, c.Heartbeat, c.MissedHeartbeats = boot, 500*time.Millisecond, 4
	})
	u := op.URL()
	if code, m := call(t, "POST", u+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24"}`); code != 200 {
		t.Fatal(code, m)
	}
	var ms []*member
	tokens, states := map[string]string{}, map[string]string{}
	for _, h := range []string{"vm1", "vm2", "vm3"} {
		code, m := call(t, "POST", u+"/v1/cladnet/lab/token", `{"hostName":"`+h+`","ttl":"1h"}`)
		if code != 200 {
			t.Fatal(code, m)
		}
		tokens[h], states[h] = m["token"].(string), t.TempDir()
		ms = append(ms, startMemberIn(t, tokens[h], states[h]))
	}
	eventually(t, 30*time.Second, "the operator lists 3 members tunneling", func() error {
		_, m := call(t, "GET", u+"/v1/cladnet/lab/peer", "")
		peers, _ := m["peers"].([]any)
		if len(peers) != 3 {
			return fmt.Errorf("%v", m)
		}
		for _, p := range peers {
			if p.(map[string]any)["state"] != "tunneling" {
				return fmt.Errorf("%v", p)
			}
		}
		return nil
	})
	eventually(t, 20*time.Second, "packets between all members", func() error {
		return allPairs(ms, func(a, b *member) error { return send(a, b, 1) })
	})
	eventually(t, 20*time.Second, "every member sees the other two", func() error {
		for _, mb := range ms {
			if n := len(mb.m.PeerStats()); n != 2 {
				return fmt.Errorf("%s routes %d peers", mb.name, n)
			}
		}
		return nil
	})

	// Bad input.
	if code, m := call(t, "POST", u+"/v1/test/cladnet/lab/type/IPERF", ""); code != 400 || !strings.Contains(fmt.Sprint(m), "CONNECTIVITY") {
		t.Errorf("bad test type: %d %v", code, m)
	}
	for _, c := range []string{"ENABLE_ENCRYPTION", "DISABLE_ENCRYPTION"} {
		if code, m := call(t, "GET", u+"/v1/control/cladnet/lab/command/"+c, ""); code != 400 || !strings.Contains(fmt.Sprint(m), "encryption is always on") {
			t.Errorf("%s: %d %v", c, code, m)
		}
	}
	if code, m := call(t, "GET", u+"/v1/control/cladnet/lab/command/REBOOT", ""); code != 400 || !strings.Contains(fmt.Sprint(m), "UP, DOWN") {
		t.Errorf("bad command: %d %v", code, m)
	}
	if code, _ := call(t, "GET", u+"/v1/control/cladnet/nope/command/UP", ""); code != 404 {
		t.Errorf("unknown CLADNet: %d", code)
	}

	// The connectivity test: cb-network's body (testSpec as a JSON string).
	start := time.Now()
	code, res := call(t, "POST", u+"/v1/test/cladnet/lab/type/CONNECTIVITY", `{"testSpec":"{\"trialCount\":3,\"interval\":\"50ms\"}"}`)
	if code != 200 {
		t.Fatal(code, res)
	}
	t.Logf("test: %s in %s", res["message"], time.Since(start).Round(time.Millisecond))
	cells := res["results"].(map[string]any)["interHostNetworkStatus"].([]any)
	if len(cells) != 6 || res["isSucceeded"] != true {
		t.Fatalf("want 6 measured pairs: %v", res)
	}
	for _, c := range cells {
		c := c.(map[string]any)
		t.Logf("%s -> %s: avg %.3f ms, loss %v%%, via %v", c["sourceName"], c["destinationName"], c["avgRttMs"], c["lossPercent"], c["path"])
		if c["sourceName"] == c["destinationName"] || c["measured"] != true || c["packetsSent"] != 3.0 || c["lossPercent"] != 0.0 ||
			c["averageRTT"].(float64) <= 0 || c["path"].(map[string]any)["transport"] == "" {
			t.Errorf("cell %v", c)
		}
	}
	runID := res["runId"].(string)
	_, list := call(t, "GET", u+"/v1/test/cladnet/lab", "")
	if runs, _ := list["runs"].([]any); len(runs) != 1 || runs[0].(map[string]any)["runId"] != runID || runs[0].(map[string]any)["measuredPairs"] != 6.0 {
		t.Errorf("runs: %v", list)
	}
	if code, got := call(t, "GET", u+"/v1/test/cladnet/lab/run/"+runID, ""); code != 200 || len(got["results"].(map[string]any)["interHostNetworkStatus"].([]any)) != 6 {
		t.Errorf("kept run: %d %v", code, got)
	}
	req, _ := http.NewRequest("GET", u+"/v1/test/cladnet/lab/run/"+runID, nil)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(recs) != 7 || recs[0][0] != "runId" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("CSV: %v\n%s", err, body)
	}

	// DOWN: every member drops packets both ways.
	start = time.Now()
	if code, m := call(t, "GET", u+"/v1/control/cladnet/lab/command/DOWN", ""); code != 200 || m["isSucceeded"] != true {
		t.Fatal(code, m)
	}
	eventually(t, 5*time.Second, "DOWN on every member", func() error {
		for _, mb := range ms {
			if !mb.m.DataPlaneDown() {
				return fmt.Errorf("%s still up", mb.name)
			}
		}
		return nil
	})
	t.Logf("DOWN in force on all 3 members %s after the command", time.Since(start).Round(time.Millisecond))
	if err := allPairs(ms, func(a, b *member) error { return blocked(a, b, 2) }); err != nil {
		t.Fatal(err)
	}
	for _, mb := range ms {
		if n := adminDown(mb); n < 2 {
			t.Errorf("%s: admin_down %d, want ≥ 2 (one per peer)", mb.name, n)
		}
		if st := mb.m.Status(); st.DataPlane != "down" || st.State != "released" {
			t.Errorf("%s: status dataPlane %q state %q", mb.name, st.DataPlane, st.State)
		}
	}
	eventually(t, 5*time.Second, "the operator lists the members released", func() error {
		_, m := call(t, "GET", u+"/v1/cladnet/lab/peer", "")
		for _, p := range m["peers"].([]any) {
			if p.(map[string]any)["state"] != "released" {
				return fmt.Errorf("%v", p)
			}
		}
		return nil
	})
	// A test while down reports every member's reason.
	if code, res := call(t, "POST", u+"/v1/test/cladnet/lab/type/RTT", `{"testSpec":{"trialCount":1}}`); code != 200 || res["isSucceeded"] != false ||
		!strings.Contains(fmt.Sprint(res["hosts"]), "data plane is down") {
		t.Errorf("test while down: %d %v", code, res)
	}

	// A member restarted while DOWN stays down.
	ms[2].m.Stop()
	ms[2] = startMemberIn(t, tokens["vm3"], states["vm3"])
	if !ms[2].m.DataPlaneDown() {
		t.Fatal("vm3 restarted up while the CLADNet is down")
	}
	eventually(t, 20*time.Second, "vm3 routes both peers again", func() error {
		if n := len(ms[2].m.PeerStats()); n != 2 || !ms[2].m.IP().IsValid() {
			return fmt.Errorf("%d peers, ip %v", n, ms[2].m.IP())
		}
		return nil
	})
	if err := blocked(ms[2], ms[0], 3); err != nil {
		t.Fatal(err)
	}
	if n := adminDown(ms[2]); n != 1 { // dropped by the switch, not for want of a route
		t.Errorf("restarted vm3: admin_down %d, want 1", n)
	}

	// UP: immediate, membership stayed.
	start = time.Now()
	if code, m := call(t, "POST", u+"/v1/control/cladnet/lab/command/UP", ""); code != 200 {
		t.Fatal(code, m)
	}
	eventually(t, 5*time.Second, "UP on every member", func() error {
		for _, mb := range ms {
			if mb.m.DataPlaneDown() {
				return fmt.Errorf("%s still down", mb.name)
			}
		}
		return nil
	})
	t.Logf("UP in force on all 3 members %s after the command", time.Since(start).Round(time.Millisecond))
	eventually(t, 20*time.Second, "packets between all members after UP", func() error {
		return allPairs(ms, func(a, b *member) error { return send(a, b, 4) })
	})
}
