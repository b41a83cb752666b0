package operator

import (
	"errors"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		state, plane, want string
	}{
		{overlay.StateTunneling, overlay.DataPlaneUp, StatusUp},
		{overlay.StateTunneling, overlay.DataPlaneDown, StatusDown},
		{overlay.StateConfiguring, overlay.DataPlaneUp, StatusDown},
		{overlay.StateFailed, overlay.DataPlaneUp, StatusDown},
		{"", overlay.DataPlaneUp, StatusDown},
	} {
		if got := statusOf(&overlay.Announcement{State: c.state}, c.plane); got != c.want {
			t.Errorf("statusOf(%q, %q) = %q, want %q", c.state, c.plane, got, c.want)
		}
	}
}

// TestWatchPathsAndCost feeds path tables as members would answer them:
// path changes become events, failures keep the last table with the error,
// the members' cost reports add up per class and per pair.
func TestWatchPathsAndCost(t *testing.T) {
	w := &watch{seen: map[string]*watched{
		"A": {peer: api.Peer{HostID: "A", HostName: "a"}, status: StatusUp},
		"B": {peer: api.Peer{HostID: "B", HostName: "b"}, status: StatusUp},
		"C": {peer: api.Peer{HostID: "C", HostName: "c"}, status: StatusLost}, // keeps its last report
	}}
	now := time.Unix(1000, 0)
	u := func(b uint64, spent, basic float64) cost.Usage {
		return cost.Usage{Bytes: b, SpentUSD: spent, BasicUSD: basic, SavedUSD: basic - spent}
	}
	relayed := api.PathRule{HostID: "B", HostName: "b", Remote: "/ip4/7.7.7.1/tcp/7460/p2p/R/p2p-circuit", Relayed: true, TxBytes: 10, RxBytes: 20}
	direct := api.PathRule{HostID: "B", HostName: "b", Remote: "/ip4/7.7.7.12/udp/7460/quic-v1", TxBytes: 30, RxBytes: 40}
	w.gotRule("A", api.NetworkingRule{Rules: []api.PathRule{relayed}, Cost: &cost.Report{Peers: []cost.PeerReport{
		{Peer: "b", Classes: map[cost.Class]cost.Usage{cost.ClassSameZone: u(1e9, 0, 0.09), cost.ClassInternet: u(1e9, 0.09, 0.09)}}}}}, nil, now)
	w.gotRule("A", api.NetworkingRule{Rules: []api.PathRule{direct}, Cost: &cost.Report{Peers: []cost.PeerReport{
		{Peer: "b", Classes: map[cost.Class]cost.Usage{cost.ClassSameZone: u(2e9, 0, 0.18), cost.ClassInternet: u(1e9, 0.09, 0.09)}}}}}, nil, now.Add(time.Second))
	w.gotRule("B", api.NetworkingRule{Cost: &cost.Report{Peers: []cost.PeerReport{{Peer: "a", Classes: map[cost.Class]cost.Usage{cost.ClassSameZone: u(5e8, 0, 0.045)}}}}}, nil, now)
	w.gotRule("C", api.NetworkingRule{Cost: &cost.Report{Peers: []cost.PeerReport{{Peer: "a", Classes: map[cost.Class]cost.Usage{cost.ClassCrossRegion: u(1e9, 0.02, 0.09)}}}}}, nil, now)
	w.gotRule("B", api.NetworkingRule{}, errors.New("stream reset"), now.Add(2*time.Second))
	w.gotRule("nobody", api.NetworkingRule{}, nil, now) // not a member: ignored

	if len(w.events) != 1 || w.events[0].Kind != "path" || w.events[0].Message != "path to b: relayed → direct" || w.events[0].Host != "a" {
		t.Errorf("events %+v, want one path event a: relayed → direct", w.events)
	}
	if b := w.seen["B"]; b.ruleErr != "stream reset" || b.rule == nil || b.rule.Cost == nil {
		t.Errorf("B after a failed fetch: err %q, rule %v: want the error and the last table", b.ruleErr, b.rule)
	}
	c := w.costLocked()
	want := map[string]cost.Usage{
		string(cost.ClassSameZone):    u(25e8, 0, 0.225),
		string(cost.ClassInternet):    u(1e9, 0.09, 0.09),
		string(cost.ClassCrossRegion): u(1e9, 0.02, 0.09),
	}
	for cl, wu := range want {
		if got := c.Classes[cl]; got.Bytes != wu.Bytes || !usdNear(got.SpentUSD, wu.SpentUSD) || !usdNear(got.BasicUSD, wu.BasicUSD) || !usdNear(got.SavedUSD, wu.SavedUSD) {
			t.Errorf("class %s: %+v, want %+v", cl, got, wu)
		}
	}
	if c.Total.Bytes != 45e8 || !usdNear(c.Total.SpentUSD, 0.11) || !usdNear(c.Total.BasicUSD, 0.405) || !usdNear(c.Total.SavedUSD, 0.295) {
		t.Errorf("total %+v", c.Total)
	}
	if len(c.Pairs) != 4 || c.Pairs[0].From != "a" || c.Pairs[0].To != "b" {
		t.Errorf("pairs %+v, want 4 starting a → b", c.Pairs)
	}
	w.sampleCost(now)
	w.sampleCost(now.Add(time.Second))
	if len(w.hist) != 2 || w.hist[1].Bytes != 45e8 {
		t.Errorf("history %+v", w.hist)
	}
}

func usdNear(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestWatchEventRing(t *testing.T) {
	w := &watch{}
	for i := 0; i < maxEvents+10; i++ {
		w.note(Event{Kind: "test", Message: itoa(uint64(i))})
	}
	if len(w.events) != maxEvents || w.events[0].Message != "10" || w.events[maxEvents-1].Message != itoa(maxEvents+9) {
		t.Errorf("ring: %d events, first %q, last %q", len(w.events), w.events[0].Message, w.events[len(w.events)-1].Message)
	}
	for _, v := range []uint64{0, 7, 1234567890} {
		if got, want := itoa(v), map[uint64]string{0: "0", 7: "7", 1234567890: "1234567890"}[v]; got != want {
			t.Errorf("itoa(%d) = %q", v, got)
		}
	}
}
