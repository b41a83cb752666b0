package operator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/operator"
)

// overview reads GET .../overview into the operator's type.
func overview(t *testing.T, op *operator.Operator, id string) operator.Overview {
	t.Helper()
	return overviewQ(t, op, id, "?paths=all")
}

func overviewQ(t *testing.T, op *operator.Operator, id, query string) operator.Overview {
	t.Helper()
	resp, err := http.Get(op.URL() + "/v1/cladnet/" + id + "/overview" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ov operator.Overview
	if err := json.NewDecoder(resp.Body).Decode(&ov); err != nil || resp.StatusCode != 200 {
		t.Fatalf("overview: %d %v", resp.StatusCode, err)
	}
	return ov
}

func statuses(ov operator.Overview) string {
	var b []string
	for _, m := range ov.Members {
		b = append(b, m.HostName+":"+m.Status)
	}
	return strings.Join(b, " ")
}

func kinds(ov operator.Overview) map[string]int {
	k := map[string]int{}
	for _, e := range ov.Events {
		k[e.Kind]++
	}
	return k
}

// TestOverviewInSwarm: the console's view over a real swarm on 127.0.0.1 —
// three members up with their paths, traffic and metered cost; one leaves
// (left), one is revoked (revoked); both stay listed with events, and an
// operator restarted from DIR still lists them and keeps its log.
func TestOverviewInSwarm(t *testing.T) {
	_, boot := startBootstrap(t)
	dir := t.TempDir()
	cfg := func(c *operator.Config) { c.Bootstrap, c.Heartbeat, c.MissedHeartbeats = boot, 500*time.Millisecond, 4 }
	op := startOp(t, dir, cfg)
	code, m := call(t, "POST", op.URL()+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	id := m["cladnetId"].(string)
	ms := []*member{startMember(t, token(t, op, id, "vm1", "1h")), startMember(t, token(t, op, id, "vm2", "1h")), startMember(t, token(t, op, id, "vm3", "1h"))}
	waitMesh(t, op, ms)
	eventually(t, 20*time.Second, "packets vm1 → vm2", func() error { return send(ms[0], ms[1], 1) })
	for i := uint32(2); i < 20; i++ {
		if err := send(ms[0], ms[1], i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "three members up, vm1's traffic and spend to vm2", func() error {
		ov := overview(t, op, id)
		if got := statuses(ov); got != "vm1:up vm2:up vm3:up" {
			return fmt.Errorf("statuses %q", got)
		}
		vm1 := ov.Members[0]
		if len(vm1.Paths) != 2 || vm1.TxBytes < 19*64 || vm1.PathsAt.IsZero() {
			return fmt.Errorf("vm1: %d paths, tx %d, at %s", len(vm1.Paths), vm1.TxBytes, vm1.PathsAt)
		}
		for _, p := range vm1.Paths {
			if p.HostName == "vm2" && (p.TxBytes < 19*64 || p.Remote == "" || p.Class == "") {
				return fmt.Errorf("vm1's path to vm2: %+v", p)
			}
		}
		var pair bool
		for _, p := range ov.Cost.Pairs {
			pair = pair || (p.From == "vm1" && p.To == "vm2" && p.Bytes >= 19*64)
		}
		if !pair || ov.Cost.Total.Bytes < 19*64 || len(ov.Cost.History) == 0 || ov.Cost.PairCount < 1 {
			return fmt.Errorf("cost %+v", ov.Cost)
		}
		return nil
	})
	// Without ?paths= the rows stay home, the counts come; with one peer ID
	// only its rows.
	ov := overviewQ(t, op, id, "")
	if m := ov.Members[0]; len(m.Paths) != 0 || m.PathCounts.Direct+m.PathCounts.Relayed != 2 {
		t.Errorf("overview without ?paths=: vm1 has %d path rows, counts %+v; want none and 2 live paths", len(m.Paths), m.PathCounts)
	}
	ov = overviewQ(t, op, id, "?paths="+ov.Members[1].HostID)
	if len(ov.Members[0].Paths) != 0 || len(ov.Members[1].Paths) != 2 {
		t.Errorf("?paths=<vm2>: vm1 %d rows, vm2 %d rows; want 0 and 2", len(ov.Members[0].Paths), len(ov.Members[1].Paths))
	}

	ms[1].m.Stop() // a graceful leave
	if code, m := call(t, "POST", op.URL()+"/v1/cladnet/lab/revocation", `{"hostName":"vm3","reason":"test"}`); code != 200 {
		t.Fatal(code, m)
	}
	var before operator.Overview
	eventually(t, 15*time.Second, "vm2 left, vm3 revoked, both listed", func() error {
		before = overview(t, op, id)
		if got := statuses(before); got != "vm1:up vm2:left vm3:revoked" {
			return fmt.Errorf("statuses %q", got)
		}
		if k := kinds(before); k["join"] != 3 || k["leave"] != 1 || k["revoked"] != 1 || k["revocation"] != 1 {
			return fmt.Errorf("events %v", k)
		}
		for _, m := range before.Members[1:] {
			if m.GoneAt.IsZero() || m.HostID == "" || m.LastSeen.IsZero() {
				return fmt.Errorf("%s: %+v", m.HostName, m)
			}
		}
		return nil
	})
	if before.RevocationVersion != 1 || before.DataPlane != "up" || before.Events[0].At.Before(before.Events[len(before.Events)-1].At) {
		t.Errorf("overview: revocation v%d, data plane %s, events not newest first", before.RevocationVersion, before.DataPlane)
	}

	// Restarted from DIR: the gone members and the log are still there.
	op.Stop()
	op2 := startOp(t, dir, cfg)
	eventually(t, 20*time.Second, "the restarted operator lists vm1 up and the gone ones", func() error {
		ov := overview(t, op2, id)
		if got := statuses(ov); got != "vm1:up vm2:left vm3:revoked" {
			return fmt.Errorf("statuses %q", got)
		}
		if k := kinds(ov); k["leave"] != 1 || k["revoked"] != 1 || len(ov.Events) < len(before.Events) {
			return fmt.Errorf("events %v (%d, had %d)", k, len(ov.Events), len(before.Events))
		}
		if ov.Cost.Total.Bytes < 19*64 {
			return fmt.Errorf("cost after restart %+v", ov.Cost.Total)
		}
		return nil
	})
}
