package overlay

import (
	"fmt"
	"testing"
)

// Attack (L3): a member announces 64 addresses of a third party. Before:
// every member dialled all 64. After: at most MaxDialDirect direct and
// MaxDialCircuit relayed ones, the announced order kept.
func TestDialAddrsCapped(t *testing.T) {
	var addrs []string
	for i := range 60 {
		addrs = append(addrs, fmt.Sprintf("/ip4/192.0.2.%d/tcp/%d", i/4+1, 7000+i))
	}
	relay := "/ip4/198.51.100.1/tcp/7460/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit"
	addrs = append(addrs, relay, relay, relay+"x", "garbage")
	for i := range 6 {
		addrs = append(addrs, fmt.Sprintf("/ip4/198.51.100.%d/tcp/7460/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit", i+2))
	}
	out, skipped := dialAddrs(addrs)
	direct, circuit := 0, 0
	for _, a := range out {
		if fmt.Sprint(a) == addrs[0] && direct != 0 {
			t.Error("order not kept")
		}
		if _, err := a.ValueForProtocol(0x0122); err == nil { // p2p-circuit
			circuit++
		} else {
			direct++
		}
	}
	if direct != MaxDialDirect || circuit != MaxDialCircuit {
		t.Fatalf("dialled %d direct and %d circuit addresses, want %d and %d", direct, circuit, MaxDialDirect, MaxDialCircuit)
	}
	if out[0].String() != addrs[0] {
		t.Fatalf("first address %s, want %s", out[0], addrs[0])
	}
	if skipped != 60-MaxDialDirect+7-MaxDialCircuit {
		t.Fatalf("skipped %d", skipped)
	}
	if few, skipped := dialAddrs(addrs[:3]); len(few) != 3 || skipped != 0 {
		t.Fatalf("three addresses: %d kept, %d skipped", len(few), skipped)
	}
}
