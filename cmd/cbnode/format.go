package main

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

// activeWithin is how recent the last frame from a peer must be for its
// link to count as active (keepalives answer data within 2 s).
const activeWithin = 10 * time.Second

// shortID shortens a peer ID for tables: "…" and its last 8 characters
// (the common "12D3KooW" prefix says nothing). --long shows it whole.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// linkState is the data plane's answer to "is it working?" for one peer:
// dead (data sent went unanswered), active (a frame arrived recently),
// idle (nothing exchanged lately, which is fine: keepalives are passive),
// or "-" with no data plane to the peer.
func linkState(st *forward.PeerStats, now time.Time) string {
	switch {
	case st == nil:
		return "-"
	case st.PathDead:
		return "dead"
	case !st.LastRecv.IsZero() && now.Sub(st.LastRecv) < activeWithin:
		return "active"
	}
	return "idle"
}

// pathStr is the path of a peer's packet stream: "direct IP:port" (with
// the transport unless TCP) or "relay <relay>"; "-" before any stream.
func pathStr(st *forward.PeerStats, long bool) string {
	if st == nil || !st.StreamUp {
		return "-"
	}
	a, err := ma.NewMultiaddr(st.Path.Remote)
	if st.Path.Relayed || (err == nil && isCircuit(a)) {
		relay := "?"
		if err == nil {
			if v, err := a.ValueForProtocol(ma.P_P2P); err == nil {
				relay = v
			}
		}
		if !long {
			relay = shortID(relay)
		}
		return "relay " + relay
	}
	where := st.Path.Remote
	if err == nil {
		if hp := hostPort(a); hp != "" {
			where = hp
		}
	}
	if where == "" {
		where = "?"
	}
	if t := st.Path.Transport; t != "" && t != "tcp" {
		where += " " + t
	}
	return "direct " + where
}

// hostPort is "IP:port" of an IP multiaddr over TCP or UDP, "" otherwise.
func hostPort(a ma.Multiaddr) string {
	ip, err := manet.ToIP(a)
	if err != nil {
		return ""
	}
	for _, code := range []int{ma.P_TCP, ma.P_UDP} {
		if port, err := a.ValueForProtocol(code); err == nil {
			return net.JoinHostPort(ip.String(), port)
		}
	}
	return ""
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// ago is "3s ago", or never for a zero time.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return d.Truncate(time.Second).String() + " ago"
}

// rttStr formats a round trip in milliseconds, "-" if unknown.
func rttStr(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	if ms < 10 {
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}

// dialAddrs orders a node's addresses the way peers should use them:
// public ones first, then private ones; circuit (relay) and loopback
// addresses are left out.
func dialAddrs(addrs []string) []string {
	type ranked struct {
		s    string
		rank int
	}
	var out []ranked
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil || isCircuit(a) || manet.IsIPLoopback(a) {
			continue
		}
		rank := 1
		if manet.IsPublicAddr(a) {
			rank = 0
		}
		out = append(out, ranked{s, rank})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].rank < out[j].rank })
	list := make([]string, len(out))
	for i, r := range out {
		list[i] = r.s
	}
	return list
}

// healthLines are the status lines about connectivity: the verdict, each
// bootstrap node, DHT, relays, reachability and how peers see us.
func healthLines(h *api.Health, long bool) [][2]string {
	if h == nil {
		return nil
	}
	id := func(s string) string {
		if long {
			return s
		}
		return shortID(s)
	}
	var l [][2]string
	l = append(l, [2]string{"Health", h.Verdict + ": " + h.Reason})
	for i, b := range h.Bootstrap {
		label := ""
		if i == 0 {
			label = "Bootstrap"
		}
		addr := strings.Join(b.Addrs, " ")
		state := "connected"
		if !b.Connected {
			state = "unreachable"
			if b.LastError == "" {
				state = "not connected yet"
			} else {
				state += fmt.Sprintf(" (%d failed tries: %s)", b.Failures, b.LastError)
			}
		}
		l = append(l, [2]string{label, fmt.Sprintf("%s %s %s", id(b.ID), addr, state)})
	}
	if len(h.Bootstrap) == 0 {
		l = append(l, [2]string{"Bootstrap", "(none configured)"})
	}
	l = append(l, [2]string{"DHT", fmt.Sprintf("%d peers in the routing table; %d members connected", h.RoutingTable, h.ConnectedMembers)})
	relays := "none"
	if len(h.Relays) > 0 {
		var ids []string
		for _, r := range h.Relays {
			ids = append(ids, id(r))
		}
		relays = strings.Join(ids, " ")
	}
	l = append(l, [2]string{"Relays", "reservations on " + relays})
	l = append(l, [2]string{"NAT", fmt.Sprintf("reachability %s (AutoNAT), type tcp %s, udp %s", h.Reachability, h.NATTCP, h.NATUDP)})
	for i, o := range h.Observed {
		label := ""
		if i == 0 {
			label = "Seen as"
		}
		l = append(l, [2]string{label, fmt.Sprintf("%s (by %d peers)", o.Addr, o.Observers)})
	}
	return l
}

// netcheckReport is `cbnode netcheck`'s text.
func netcheckReport(nc api.Netcheck, long bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Report (took %s):\n", nc.Took)
	if len(nc.Targets) == 0 {
		b.WriteString("  * no bootstrap node or relay to check\n")
	}
	for _, t := range nc.Targets {
		id := t.ID
		if !long {
			id = shortID(id)
		}
		role := strings.Join(t.Roles, "+")
		if t.OK {
			via := t.Remote
			if t.Relayed {
				via += " (relayed)"
			}
			resv := ""
			if t.Reserved {
				resv = ", relay reservation held"
			}
			fmt.Fprintf(&b, "  * %s %s: ok, %s via %s%s\n", role, id, rttStr(t.RTTms), via, resv)
		} else {
			fmt.Fprintf(&b, "  * %s %s at %s: FAILED: %s\n", role, id, strings.Join(t.Addrs, " "), t.Error)
		}
	}
	fmt.Fprintf(&b, "  * reachability (AutoNAT): %s\n", nc.Reachability)
	fmt.Fprintf(&b, "  * NAT type: tcp %s, udp %s\n", nc.NATTCP, nc.NATUDP)
	if len(nc.Observed) == 0 {
		b.WriteString("  * seen by peers as: (no observation yet)\n")
	}
	for _, o := range nc.Observed {
		fmt.Fprintf(&b, "  * seen by peers as: %s (%d peers)\n", o.Addr, o.Observers)
	}
	pub := "(none)"
	if len(nc.PublicAddrs) > 0 {
		pub = strings.Join(nc.PublicAddrs, " ")
	}
	fmt.Fprintf(&b, "  * public addresses: %s\n", pub)
	hp := nc.HolePunch
	fmt.Fprintf(&b, "  * direct connections: %s: %s (DCUtR %s, relay reservation %s)\n", hp.Direct, hp.Analysis, onOff(hp.DCUtR), yesNo(hp.Relayed))
	return b.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
