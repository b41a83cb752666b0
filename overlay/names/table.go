package names

import (
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/miekg/dns"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/overlay"
)

// TopZone is the domain every CLADNet's names live under.
const TopZone = "cbnode"

// Entry is one resolvable name.
type Entry struct {
	Host     string // the certificate's host name, lower case
	IP       netip.Addr
	Peer     peer.ID
	NotAfter time.Time // the certificate's end: the name resolves until then
	Self     bool
}

// Conflict is a name withheld because it would be ambiguous.
type Conflict struct {
	Host   string    // the host name (lower case) withheld
	Reason string    // "host name" or "overlay IP <ip>": what the members share
	Peers  []peer.ID // the members involved, sorted
}

// Table maps host names to overlay IPs. It is immutable once built.
type Table struct {
	zone      string // "<cladnet>.cbnode." (lower case), "" if the CLADNet name is no domain name
	cladnet   string // the CLADNet's name as given (hosts-file markers)
	hosts     map[string]Entry
	conflicts []Conflict
}

// Zone returns the CLADNet's zone, "<cladnet>.cbnode" (no trailing dot), or
// "" when the CLADNet's name cannot be a domain name.
func (t *Table) Zone() string { return strings.TrimSuffix(t.zone, ".") }

// Lookup returns the overlay IP of host (any case) if it resolves at now.
func (t *Table) Lookup(host string, now time.Time) (netip.Addr, bool) {
	if t == nil {
		return netip.Addr{}, false
	}
	e, ok := t.hosts[strings.ToLower(host)]
	if !ok || !now.Before(e.NotAfter) {
		return netip.Addr{}, false
	}
	return e.IP, true
}

// Entries returns the names that resolve at now, sorted by host name.
func (t *Table) Entries(now time.Time) []Entry {
	if t == nil {
		return nil
	}
	out := make([]Entry, 0, len(t.hosts))
	for _, e := range t.hosts {
		if now.Before(e.NotAfter) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// Conflicts returns the withheld names, sorted by host name.
func (t *Table) Conflicts() []Conflict {
	if t == nil {
		return nil
	}
	return t.conflicts
}

// Build makes the name table of spec's CLADNet from the members table at
// now. A member has a name only while it is live (in the table, not
// closing, released or failed), holds a certificate of this CLADNet for its
// own peer ID that is valid at now, and announces an overlay IP inside the
// CLADNet's range. Names are compared case-insensitively. A host name held
// by two members, or two names on one overlay IP (a conflict IPAM is still
// settling), resolve to none of them: a name never leads to the wrong
// machine.
func Build(spec *cladnet.Spec, members []overlay.Member, now time.Time) *Table {
	t := &Table{cladnet: spec.Name, hosts: map[string]Entry{}}
	if z := strings.ToLower(spec.Name) + "." + TopZone + "."; dns.IsFqdn(z) && isDomainName(z) {
		t.zone = z
	}
	prefix, _ := spec.Prefix()
	byHost := map[string][]Entry{}
	byIP := map[netip.Addr][]Entry{}
	for _, m := range members {
		e, ok := entryOf(spec, prefix, m, now)
		if !ok {
			continue
		}
		byHost[e.Host] = append(byHost[e.Host], e)
		byIP[e.IP] = append(byIP[e.IP], e)
	}
	withheld := map[string]bool{}
	for host, es := range byHost {
		if len(es) > 1 {
			withheld[host] = true
			t.conflicts = append(t.conflicts, Conflict{Host: host, Reason: "host name", Peers: peersOf(es)})
		}
	}
	for ip, es := range byIP {
		if len(es) < 2 {
			continue
		}
		for _, e := range es {
			if !withheld[e.Host] {
				withheld[e.Host] = true
				t.conflicts = append(t.conflicts, Conflict{Host: e.Host, Reason: "overlay IP " + ip.String(), Peers: peersOf(es)})
			}
		}
	}
	for host, es := range byHost {
		if !withheld[host] {
			t.hosts[host] = es[0]
		}
	}
	sort.Slice(t.conflicts, func(i, j int) bool { return t.conflicts[i].Host < t.conflicts[j].Host })
	return t
}

func entryOf(spec *cladnet.Spec, prefix netip.Prefix, m overlay.Member, now time.Time) (Entry, bool) {
	a := m.Ann
	if a == nil || a.Cert == nil || a.Kind == overlay.KindLeave {
		return Entry{}, false
	}
	switch a.State {
	case overlay.StateClosing, overlay.StateReleased, overlay.StateFailed:
		return Entry{}, false
	}
	c := a.Cert
	if c.CladnetID != spec.ID || c.PeerID != m.ID.String() || now.Before(c.NotBefore) || !now.Before(c.NotAfter) {
		return Entry{}, false
	}
	if cladnet.ValidateHostName(c.HostName) != nil || !strings.EqualFold(a.HostName, c.HostName) {
		return Entry{}, false
	}
	ip, err := netip.ParseAddr(a.OverlayIP)
	if err != nil || !ip.Is4() || (prefix.IsValid() && !prefix.Contains(ip)) {
		return Entry{}, false
	}
	return Entry{Host: strings.ToLower(c.HostName), IP: ip, Peer: m.ID, NotAfter: c.NotAfter, Self: m.Self}, true
}

func peersOf(es []Entry) []peer.ID {
	out := make([]peer.ID, 0, len(es))
	for _, e := range es {
		out = append(out, e.Peer)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// isDomainName reports whether the fqdn z is a valid DNS name of at most 255
// octets with labels of 1-63 octets.
func isDomainName(z string) bool {
	_, ok := dns.IsDomainName(z)
	if !ok || strings.Contains(z, "..") {
		return false
	}
	for _, l := range dns.SplitDomainName(z) {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
	}
	return true
}
