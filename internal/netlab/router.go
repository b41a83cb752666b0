//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
)

// NATKind selects what a Router does to traffic from its LAN to its WAN.
type NATKind int

const (
	// NoNAT routes between LAN and WAN without translation or filtering.
	NoNAT NATKind = iota
	// Cone masquerades LAN traffic behind the WAN address (iptables
	// MASQUERADE), which keeps source ports where possible and reuses a
	// mapping for all destinations (endpoint-independent mapping).
	Cone
	// Symmetric masquerades with --random-fully: every new destination gets
	// a new random source port (endpoint-dependent mapping).
	Symmetric
)

func (k NATKind) String() string {
	switch k {
	case NoNAT:
		return "none"
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// ErrNoIptables is returned by Lab.Router for NAT routers when the iptables
// command (ip6tables for IPv6) is not installed.
var ErrNoIptables = errors.New("iptables not found in PATH (install the Debian package iptables)")

// Router is a host attached to a WAN and a LAN switch that forwards between
// them, with NAT when Kind is Cone or Symmetric. Its interfaces are named
// after the switches.
type Router struct {
	*Host
	Kind NATKind
	WAN  *Switch
	LAN  *Switch
}

// WANAddr returns the router's address on the WAN switch.
func (r *Router) WANAddr() netip.Prefix { return r.Addr(r.WAN) }

// LANAddr returns the router's address on the LAN switch; LAN hosts use its
// address as their default gateway.
func (r *Router) LANAddr() netip.Prefix { return r.Addr(r.LAN) }

// Router creates a router host attached to wan with wanAddr and to lan with
// lanAddr, enables forwarding inside its namespace only and, for Cone and
// Symmetric, masquerades traffic leaving through the WAN interface.
// Unsolicited connections from the WAN to the LAN are dropped; replies
// (conntrack ESTABLISHED,RELATED) pass, as with a home router.
func (l *Lab) Router(name string, wan *Switch, wanAddr netip.Prefix, lan *Switch, lanAddr netip.Prefix, kind NATKind) (*Router, error) {
	r, err := l.router(name, wan, wanAddr, lan, lanAddr, kind)
	if err != nil {
		return nil, fmt.Errorf("netlab: router %s: %w", name, err)
	}
	return r, nil
}

func (l *Lab) router(name string, wan *Switch, wanAddr netip.Prefix, lan *Switch, lanAddr netip.Prefix, kind NATKind) (*Router, error) {
	if wan == nil || lan == nil || wan == lan {
		return nil, errors.New("needs two distinct switches")
	}
	if kind < NoNAT || kind > Symmetric {
		return nil, fmt.Errorf("unknown NAT kind %v", kind)
	}
	if !wanAddr.IsValid() || !lanAddr.IsValid() || wanAddr.Addr().Unmap().Is4() != lanAddr.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("WAN %v and LAN %v addresses must be valid and of the same family", wanAddr, lanAddr)
	}
	v4 := wanAddr.Addr().Unmap().Is4()
	ipt := "iptables"
	if !v4 {
		ipt = "ip6tables"
	}
	if kind != NoNAT {
		if _, err := exec.LookPath(ipt); err != nil {
			if v4 {
				return nil, ErrNoIptables
			}
			return nil, fmt.Errorf("%s: %w", ipt, ErrNoIptables)
		}
	}
	h, err := l.Host(name)
	if err != nil {
		return nil, err
	}
	if err := wan.Attach(h, wanAddr); err != nil {
		return nil, err
	}
	if err := lan.Attach(h, lanAddr); err != nil {
		return nil, err
	}
	fwd := "net.ipv4.ip_forward"
	if !v4 {
		fwd = "net.ipv6.conf.all.forwarding"
	}
	if err := h.SetSysctl(fwd, "1"); err != nil {
		return nil, err
	}
	if kind != NoNAT {
		masq := []string{"-w", "10", "-t", "nat", "-A", "POSTROUTING", "-o", wan.Name(), "-j", "MASQUERADE"}
		if kind == Symmetric {
			masq = append(masq, "--random-fully")
		}
		rules := [][]string{
			masq,
			{"-w", "10", "-A", "FORWARD", "-i", wan.Name(), "-o", lan.Name(), "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-w", "10", "-A", "FORWARD", "-i", wan.Name(), "-o", lan.Name(), "-j", "DROP"},
			// Like a cloud NAT gateway or a home router, drop (do not
			// refuse) unsolicited packets to the router itself: a TCP RST
			// or ICMP unreachable would kill a hole punch whose first
			// packet arrives before the LAN host's own has left.
			{"-w", "10", "-A", "INPUT", "-i", wan.Name(), "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-w", "10", "-A", "INPUT", "-i", wan.Name(), "-j", "DROP"},
		}
		for _, rule := range rules {
			ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
			_, err := h.Run(ctx, ipt, rule...)
			cancel()
			if err != nil {
				return nil, err
			}
		}
	}
	return &Router{Host: h, Kind: kind, WAN: wan, LAN: lan}, nil
}
