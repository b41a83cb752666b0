package overlay

import (
	ma "github.com/multiformats/go-multiaddr"
)

// A member announces up to 64 addresses (announce.go), and every member
// dials the addresses of every other member: announced addresses of a
// third party would turn the CLADNet into a reflector aimed at it. A node
// therefore dials at most MaxDialDirect direct and MaxDialCircuit relayed
// addresses of a member, in the order announced (a node lists its best
// addresses first: --announce ones, public, then private).
const (
	MaxDialDirect  = 8
	MaxDialCircuit = 4
)

// dialAddrs parses the announced addresses and keeps the first
// MaxDialDirect direct and MaxDialCircuit circuit ones, without
// duplicates; unparsable ones are skipped. It reports how many valid
// addresses it left out.
func dialAddrs(addrs []string) (out []ma.Multiaddr, skipped int) {
	seen := map[string]bool{}
	direct, circuit := 0, 0
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil || seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			if circuit >= MaxDialCircuit {
				skipped++
				continue
			}
			circuit++
		} else {
			if direct >= MaxDialDirect {
				skipped++
				continue
			}
			direct++
		}
		out = append(out, a)
	}
	return out, skipped
}
