package cost

import (
	"fmt"
	"strconv"
	"strings"
)

// FilterPolicy is the packet filter part of a rules document: which data
// packets a member accepts from other members. It travels inside the
// owner-signed Rules (field "filter") and is enforced on receive by every
// member (package overlay/filter), with connection tracking so replies to
// connections a member opened itself always pass.
//
//	"filter": {
//	  "default": "deny",
//	  "inbound": [
//	    {"name": "ssh-from-admins", "from": ["group:admin"], "proto": "tcp", "ports": ["22"]},
//	    {"name": "web", "to": ["group:web"], "proto": "tcp", "ports": ["80", "443", "8000-8100"]},
//	    {"name": "ping", "proto": "icmp", "icmpTypes": [8]}
//	  ]
//	}
//
// Rules are tried in order; the first rule matching a packet decides
// (action allow, the default, or deny). A packet no rule matches gets the
// policy's default: "allow" (also when absent: every member reaches every
// member, as without a filter) or "deny".
type FilterPolicy struct {
	Default string       `json:"default,omitempty"`
	Inbound []FilterRule `json:"inbound,omitempty"`
}

// FilterRule is one inbound rule.
//
//   - from: who sends: "group:NAME" (a group in the sender's certificate),
//     "host:NAME" (the sender's certificate host name) or "*"; empty = any
//     member.
//   - to: which members the rule protects, same syntax; empty = all.
//   - proto: "any" (default), "tcp", "udp" or "icmp".
//   - ports: destination ports or ranges ("22", "8000-8100") for tcp/udp;
//     empty = all ports.
//   - icmpTypes: ICMP types (8 = echo request) for icmp; empty = all.
type FilterRule struct {
	Name      string   `json:"name,omitempty"`
	Action    string   `json:"action,omitempty"`
	From      []string `json:"from,omitempty"`
	To        []string `json:"to,omitempty"`
	Proto     string   `json:"proto,omitempty"`
	Ports     []string `json:"ports,omitempty"`
	ICMPTypes []int    `json:"icmpTypes,omitempty"`
}

// Filter actions and protocols.
const (
	FilterAllow = "allow"
	FilterDeny  = "deny"

	ProtoAny  = "any"
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp"
)

// MaxFilterRules bounds the inbound rules of a policy.
const MaxFilterRules = 256

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// ParsePortRange parses "22" or "8000-8100".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port %q: want a port (0-65535) or a range such as 8000-8100", s)
	}
	if l > h {
		return PortRange{}, fmt.Errorf("port range %q: the first port is greater than the last", s)
	}
	return PortRange{uint16(l), uint16(h)}, nil
}

// DefaultAction returns the action for packets no rule matches.
func (p *FilterPolicy) DefaultAction() string {
	if p == nil || p.Default == "" {
		return FilterAllow
	}
	return p.Default
}

// RuleName is the rule's name, or "rule-N" (N counted from 1) if unnamed.
func (r *FilterRule) RuleName(i int) string {
	if r.Name != "" {
		return r.Name
	}
	return "rule-" + strconv.Itoa(i+1)
}

// ActionName is the rule's action, FilterAllow when empty.
func (r *FilterRule) ActionName() string {
	if r.Action == "" {
		return FilterAllow
	}
	return r.Action
}

// ProtoName is the rule's protocol, ProtoAny when empty.
func (r *FilterRule) ProtoName() string {
	if r.Proto == "" {
		return ProtoAny
	}
	return strings.ToLower(r.Proto)
}

// Validate checks the policy (a nil policy is valid: allow all).
func (p *FilterPolicy) Validate() error {
	if p == nil {
		return nil
	}
	switch p.Default {
	case "", FilterAllow, FilterDeny:
	default:
		return fmt.Errorf("filter: default %q: want %q or %q", p.Default, FilterAllow, FilterDeny)
	}
	if len(p.Inbound) > MaxFilterRules {
		return fmt.Errorf("filter: %d inbound rules, at most %d", len(p.Inbound), MaxFilterRules)
	}
	names := map[string]bool{}
	for i := range p.Inbound {
		r := &p.Inbound[i]
		name := r.RuleName(i)
		if names[name] {
			return fmt.Errorf("filter: two rules are named %q: names must be unique (they key the counters)", name)
		}
		names[name] = true
		if err := r.validate(); err != nil {
			return fmt.Errorf("filter rule %q: %w", name, err)
		}
	}
	return nil
}

func (r *FilterRule) validate() error {
	if len(r.Name) > 64 {
		return fmt.Errorf("name has %d bytes, at most 64", len(r.Name))
	}
	switch r.Action {
	case "", FilterAllow, FilterDeny:
	default:
		return fmt.Errorf("action %q: want %q or %q", r.Action, FilterAllow, FilterDeny)
	}
	for _, sel := range [][]string{r.From, r.To} {
		for _, s := range sel {
			if err := validSelector(s); err != nil {
				return err
			}
		}
	}
	proto := r.ProtoName()
	switch proto {
	case ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP:
	default:
		return fmt.Errorf("proto %q: want any, tcp, udp or icmp", r.Proto)
	}
	if len(r.Ports) > 0 && proto != ProtoTCP && proto != ProtoUDP {
		return fmt.Errorf("ports need proto tcp or udp (proto is %s)", proto)
	}
	for _, p := range r.Ports {
		if _, err := ParsePortRange(p); err != nil {
			return err
		}
	}
	if len(r.ICMPTypes) > 0 && proto != ProtoICMP {
		return fmt.Errorf("icmpTypes need proto icmp (proto is %s)", proto)
	}
	for _, t := range r.ICMPTypes {
		if t < 0 || t > 255 {
			return fmt.Errorf("icmp type %d: want 0-255", t)
		}
	}
	return nil
}

// validSelector accepts "*", "group:NAME" and "host:NAME".
func validSelector(s string) error {
	if s == "*" {
		return nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "group" && kind != "host") || name == "" {
		return fmt.Errorf("selector %q: want \"group:NAME\", \"host:NAME\" or \"*\"", s)
	}
	return nil
}

// SelectorMatches reports whether sel (a from or to list) matches a member
// with the given certificate host name and groups. An empty list matches
// every member.
func SelectorMatches(sel []string, host string, groups []string) bool {
	if len(sel) == 0 {
		return true
	}
	for _, s := range sel {
		kind, name, _ := strings.Cut(s, ":")
		switch {
		case s == "*":
			return true
		case kind == "host" && name == host:
			return true
		case kind == "group":
			for _, g := range groups {
				if g == name {
					return true
				}
			}
		}
	}
	return false
}

// Clone returns a deep copy of p.
func (p *FilterPolicy) Clone() *FilterPolicy {
	if p == nil {
		return nil
	}
	c := &FilterPolicy{Default: p.Default}
	for _, r := range p.Inbound {
		r.From = append([]string(nil), r.From...)
		r.To = append([]string(nil), r.To...)
		r.Ports = append([]string(nil), r.Ports...)
		r.ICMPTypes = append([]int(nil), r.ICMPTypes...)
		c.Inbound = append(c.Inbound, r)
	}
	return c
}
