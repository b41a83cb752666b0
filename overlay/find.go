package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Errors Find returns; test with errors.Is.
var (
	ErrNoSuchMember  = errors.New("not a member")
	ErrAmbiguousName = errors.New("names more than one member")
)

// AmbiguousError is Find's error for a host name that two or more live
// members carry (two certificates issued with one name): it lists them, so
// the caller can pick one by peer ID.
type AmbiguousError struct {
	Key        string
	Candidates []Member
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q names %d members: ", e.Key, len(e.Candidates))
	for i, c := range e.Candidates {
		if i > 0 {
			b.WriteString(", ")
		}
		ip := c.Ann.OverlayIP
		if ip == "" {
			ip = "no address"
		}
		fmt.Fprintf(&b, "%s (%s)", c.ID, ip)
	}
	b.WriteString("; give the peer ID (or revoke the certificate that should not carry the name)")
	return b.String()
}

// Is makes errors.Is(err, ErrAmbiguousName) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguousName }

// Find returns the member key names: a peer ID, an overlay IP (the member
// that holds it by a verified claim: the one packets go to) or a host
// name. A host name two live members carry is refused with an
// *AmbiguousError listing them, never settled by peer-ID order.
func (m *Membership) Find(key string) (Member, error) {
	if id, err := peer.Decode(key); err == nil {
		if mem, ok := m.Member(id); ok {
			return mem, nil
		}
	}
	if ip, err := netip.ParseAddr(key); err == nil {
		if id, ok := m.MemberIPs()[ip]; ok {
			if mem, ok := m.Member(id); ok {
				return mem, nil
			}
		}
		for _, mem := range m.Members() {
			if mem.Self && mem.Ann.OverlayIP == ip.String() {
				return mem, nil
			}
		}
		return Member{}, fmt.Errorf("%s: %w", key, ErrNoSuchMember)
	}
	var found []Member
	for _, mem := range m.Members() {
		if mem.Ann.HostName == key {
			found = append(found, mem)
		}
	}
	switch len(found) {
	case 0:
		return Member{}, fmt.Errorf("%s: %w", key, ErrNoSuchMember)
	case 1:
		return found[0], nil
	}
	return Member{}, &AmbiguousError{Key: key, Candidates: found}
}
