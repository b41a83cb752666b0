package cost

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
)

func TestMeterMath(t *testing.T) {
	var m Meter // the zero value is usable
	m.Add("peerA", ClassCrossZone, 0.01, 0.09, 2e9)
	rep := m.Report()
	want := Usage{Bytes: 2e9, SpentUSD: 0.02, BasicUSD: 0.18, SavedUSD: 0.16}
	if rep.Total != want {
		t.Errorf("total %+v, want %+v", rep.Total, want)
	}
	if len(rep.Peers) != 1 || rep.Peers[0].Peer != "peerA" || rep.Peers[0].Usage != want || rep.Peers[0].Classes[ClassCrossZone] != want {
		t.Errorf("peers %+v", rep.Peers)
	}
	if rep.Classes[ClassCrossZone] != want {
		t.Errorf("classes %+v", rep.Classes)
	}
}

func TestMeterBreakdown(t *testing.T) {
	m := NewMeter()
	m.Add("b", ClassSameSubnet, 0, 0.02, 5e8)       // $0 spent, $0.01 basic
	m.Add("b", ClassInternet, 0.09, 0.09, 1e9)      // $0.09, $0.09
	m.Add("a", ClassSameSubnet, 0, 0.02, 5e8)       // $0, $0.01
	m.Add("a", ClassSameSubnet, 0, 0.02, 5e8)       // same bucket
	m.Add("a", ClassCrossZone, 0.02, 0.02, 3e9)     // $0.06, $0.06
	m.Add("a", ClassCrossZone, math.NaN(), -1, 1e9) // bad prices count as 0
	m.Add("a", ClassCrossRegion, 0.02, 0.02, 0)     // nothing
	m.AddDecision("c", Decision{Class: ClassSameZone, PricePerGB: 0, PublicPricePerGB: 0.074}, 1e10)
	rep := m.Report()

	if got := []string{rep.Peers[0].Peer, rep.Peers[1].Peer, rep.Peers[2].Peer}; strings.Join(got, ",") != "a,b,c" {
		t.Errorf("peers not sorted: %v", got)
	}
	a := rep.Peers[0]
	if want := (Usage{Bytes: 5e9, SpentUSD: 0.06, BasicUSD: 0.08, SavedUSD: 0.02}); a.Usage != want {
		t.Errorf("peer a %+v, want %+v", a.Usage, want)
	}
	if want := (Usage{Bytes: 1e9, SpentUSD: 0, BasicUSD: 0.02, SavedUSD: 0.02}); a.Classes[ClassSameSubnet] != want {
		t.Errorf("peer a same-subnet %+v, want %+v", a.Classes[ClassSameSubnet], want)
	}
	if _, ok := a.Classes[ClassCrossRegion]; ok {
		t.Error("a zero-byte Add left a class entry")
	}
	if want := (Usage{Bytes: 15e8, SpentUSD: 0.09, BasicUSD: 0.1, SavedUSD: 0.01}); rep.Peers[1].Usage != want {
		t.Errorf("peer b %+v, want %+v", rep.Peers[1].Usage, want)
	}
	if want := (Usage{Bytes: 1e10, SpentUSD: 0, BasicUSD: 0.74, SavedUSD: 0.74}); rep.Peers[2].Usage != want {
		t.Errorf("peer c %+v, want %+v", rep.Peers[2].Usage, want)
	}
	if want := (Usage{Bytes: 165e8, SpentUSD: 0.15, BasicUSD: 0.92, SavedUSD: 0.77}); rep.Total != want {
		t.Errorf("total %+v, want %+v", rep.Total, want)
	}
	if want := (Usage{Bytes: 15e8, SpentUSD: 0, BasicUSD: 0.03, SavedUSD: 0.03}); rep.Classes[ClassSameSubnet] != want {
		t.Errorf("class same-subnet %+v, want %+v", rep.Classes[ClassSameSubnet], want)
	}

	m.Forget("c")
	if rep := m.Report(); len(rep.Peers) != 2 || rep.Total.Bytes != 65e8 {
		t.Errorf("after Forget: %+v", rep)
	}
}

func TestMeterSaturates(t *testing.T) {
	var m Meter
	m.Add("p", ClassInternet, 0.09, 0.09, math.MaxUint64-1)
	m.Add("p", ClassInternet, 0.09, 0.09, 5)
	m.Add("p", ClassSameZone, 0, 0.02, 5)
	if got := m.Report().Total.Bytes; got != math.MaxUint64 {
		t.Errorf("bytes %d, want saturation at MaxUint64", got)
	}
}

func TestMeterJSON(t *testing.T) {
	var m Meter
	m.Add("12D3KooWpeer", ClassCrossZone, 0.01, 0.09, 2e9)
	b, err := json.Marshal(m.Report())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"peers":[{"peer":"12D3KooWpeer","bytes":2000000000,"spentUsd":0.02,"basicUsd":0.18,"savedUsd":0.16,` +
		`"classes":{"cross-zone":{"bytes":2000000000,"spentUsd":0.02,"basicUsd":0.18,"savedUsd":0.16}}}],` +
		`"classes":{"cross-zone":{"bytes":2000000000,"spentUsd":0.02,"basicUsd":0.18,"savedUsd":0.16}},` +
		`"total":{"bytes":2000000000,"spentUsd":0.02,"basicUsd":0.18,"savedUsd":0.16}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if b, _ := json.Marshal(NewMeter().Report()); string(b) != `{"peers":[],"classes":{},"total":{"bytes":0,"spentUsd":0,"basicUsd":0,"savedUsd":0}}` {
		t.Errorf("empty report JSON %s", b)
	}
}

func TestMeterConcurrent(t *testing.T) {
	var m Meter
	const workers, adds = 16, 2000
	peers := []string{"p1", "p2", "p3"}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < adds; i++ {
				m.Add(peers[(w+i)%len(peers)], ClassCrossZone, 0.01, 0.09, 1e6)
				if i%500 == 0 {
					_ = m.Report()
				}
			}
		}(w)
	}
	wg.Wait()
	rep := m.Report()
	const bytes = workers * adds * 1e6 // 32e9
	if want := (Usage{Bytes: bytes, SpentUSD: 0.32, BasicUSD: 2.88, SavedUSD: 2.56}); rep.Total != want {
		t.Errorf("total %+v, want %+v", rep.Total, want)
	}
	var sum uint64
	for _, p := range rep.Peers {
		sum += p.Bytes
	}
	if sum != bytes {
		t.Errorf("per-peer bytes add up to %d, want %d", sum, uint64(bytes))
	}
}
