package operator_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/operator"
)

// TestOperatorReachesMembers: operator + bootstrap + 3 members on
// 127.0.0.1. PUT .../details through the operator with cb-network's five
// fields reaches member a, which merges them (its join-time addresses
// stay) and announces them; GET .../networkingRule of b comes from b
// itself; a member that left answers 502, an unknown host 404.
func TestOperatorReachesMembers(t *testing.T) {
	_, boot := startBootstrap(t)
	op := startOp(t, t.TempDir(), func(c *operator.Config) {
		c.Bootstrap, c.Heartbeat, c.MissedHeartbeats = boot, 500*time.Millisecond, 4
	})
	u := op.URL()
	code, m := call(t, "POST", u+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.78.0.0/24"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	id := m["cladnetId"].(string)
	var ms []*member
	for _, h := range []string{"vm1", "vm2", "vm3"} {
		code, m := call(t, "POST", u+"/v1/cladnet/"+id+"/token", `{"hostName":"`+h+`","ttl":"1h"}`)
		if code != 200 {
			t.Fatal(code, m)
		}
		ms = append(ms, startMemberCloud(t, m["token"].(string), cost.CloudInfo{ProviderName: "aws", PublicIP: "127.0.0.1", PrivateIPs: []string{"127.0.0.1"}}))
	}
	a, bm, c := ms[0], ms[1], ms[2]
	eventually(t, 30*time.Second, "the operator lists the members, and b sees a and c", func() error {
		_, m := call(t, "GET", u+"/v1/cladnet/lab/peer", "")
		if peers, _ := m["peers"].([]any); len(peers) != 3 {
			return fmt.Errorf("operator: %v", m)
		}
		for _, o := range []*member{a, c} {
			if p, ok := bm.m.Peer(o.name); !ok || p.State != "tunneling" || p.IP == "" {
				return fmt.Errorf("b sees %s as %+v", o.name, p)
			}
		}
		return nil
	})

	// cb-network's body: the five location fields only.
	body := `{"cloudInformation":{"providerName":"GCP","regionId":"asia-northeast3","availabilityZoneId":"asia-northeast3-a","virtualNetworkId":"vpc-lab","subnetId":"subnet-1"}}`
	code, m = call(t, "PUT", u+"/v1/cladnet/"+id+"/peer/"+a.name+"/details", body)
	if code != 200 {
		t.Fatal(code, m)
	}
	want := cost.CloudInfo{ProviderName: "gcp", RegionID: "asia-northeast3", AvailabilityZoneID: "asia-northeast3-a",
		VirtualNetworkID: "vpc-lab", SubnetID: "subnet-1", PrivateIPs: []string{"127.0.0.1"}, PublicIP: "127.0.0.1"}
	d, _ := m["details"].(map[string]any)
	if m["hostId"] != a.m.Membership().Self().String() || m["hostName"] != a.name || m["hostPublicIp"] != "127.0.0.1" ||
		d["providerName"] != "gcp" || d["subnetId"] != "subnet-1" || d["publicIp"] != "127.0.0.1" {
		t.Errorf("PUT answer: %v", m)
	}
	same := func(got cost.CloudInfo) error {
		if got.ProviderName != want.ProviderName || got.RegionID != want.RegionID || got.AvailabilityZoneID != want.AvailabilityZoneID ||
			got.VirtualNetworkID != want.VirtualNetworkID || got.SubnetID != want.SubnetID || got.PublicIP != want.PublicIP || !slices.Equal(got.PrivateIPs, want.PrivateIPs) {
			return fmt.Errorf("%+v, want %+v", got, want)
		}
		return nil
	}
	if p, ok := a.m.Peer(a.name); !ok {
		t.Fatal("a lost itself")
	} else if err := same(p.Details); err != nil {
		t.Errorf("a's own entry: %v", err)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "b's view of a and the operator's show the details", func() error {
		p, _ := bm.m.Peer(a.name)
		if err := same(p.Details); err != nil {
			return fmt.Errorf("b: %v", err)
		}
		_, m := call(t, "GET", u+"/v1/cladnet/"+id+"/peer/"+a.name, "")
		if d, _ := m["details"].(map[string]any); d["regionId"] != "asia-northeast3" {
			return fmt.Errorf("operator: %v", m)
		}
		return nil
	})
	t.Logf("details on b's table %s after the PUT", time.Since(start).Round(time.Millisecond))
	if code, m := call(t, "PUT", u+"/v1/cladnet/"+id+"/peer/"+a.name+"/details", `{"cloudInformation":{"publicIp":"not-an-ip"}}`); code != 400 {
		t.Errorf("bad public IP: %d %v", code, m)
	}

	// b's networking rule, asked of b by the operator.
	code, m = call(t, "GET", u+"/v1/cladnet/"+id+"/peer/"+bm.name+"/networkingRule", "")
	if code != 200 {
		t.Fatal(code, m)
	}
	names, ips := fmt.Sprint(m["hostName"]), fmt.Sprint(m["peerIp"])
	rows, _ := m["rules"].([]any)
	if m["cladnetId"] != id || !strings.Contains(names, a.name) || !strings.Contains(names, c.name) || strings.Contains(names, bm.name) ||
		!strings.Contains(ips, a.m.IP().String()) || !strings.Contains(ips, c.m.IP().String()) || len(rows) < 2 {
		t.Errorf("networking rule of b: %v", m)
	}
	for _, k := range []string{"hostId", "peerIp", "selectedIp", "peerScope", "state"} {
		if l, _ := m[k].([]any); len(l) != len(rows) {
			t.Errorf("networking rule of b: %s has %d entries, rules %d", k, len(l), len(rows))
		}
	}

	// c leaves: the operator says it is not online, sends nothing.
	c.m.Stop()
	eventually(t, 10*time.Second, "the operator drops c", func() error {
		if code, _ := call(t, "GET", u+"/v1/cladnet/"+id+"/peer/"+c.name, ""); code != 404 {
			return fmt.Errorf("GET peer %s: %d", c.name, code)
		}
		return nil
	})
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/details", body}, {"GET", "/networkingRule", ""},
	} {
		code, m := call(t, r.method, u+"/v1/cladnet/"+id+"/peer/"+c.name+r.path, r.body)
		if msg, _ := m["error"].(string); code != 502 || !strings.Contains(msg, "not online") {
			t.Errorf("%s %s of a member that left: %d %v", r.method, r.path, code, m)
		} else {
			t.Logf("%s %s of a member that left: %d %s", r.method, r.path, code, msg)
		}
	}
	if code, m := call(t, "PUT", u+"/v1/cladnet/"+id+"/peer/nosuch/details", body); code != 404 {
		t.Errorf("unknown host: %d %v", code, m)
	}
}
