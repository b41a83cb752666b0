package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// checkPortsFree refuses a fixed listen port that another process already
// holds, on TCP or on UDP (QUIC).
//
// libp2p's TCP transport listens with SO_REUSEPORT (so that it can dial from
// its listen port, which TCP hole punching needs): a second cbnode on the
// same port would bind too, and the kernel would split inbound connections
// between two identities. QUIC listens without it, but libp2p starts as long
// as one listen address works, so a node would silently run on TCP only.
// The check binds each address once without SO_REUSEPORT and lets go at
// once: a listener that exists (with or without SO_REUSEPORT) makes that
// bind fail. Dialing keeps reusing the listen port. What remains is the
// short window between this check and libp2p's bind, and a program that
// binds with SO_REUSEPORT after cbnode started — which cbnode cannot
// prevent without giving up port reuse for hole punching.
//
// Port 0 (random ports) is never in use.
func checkPortsFree(ips []netip.Addr, port int) error {
	if port == 0 {
		return nil
	}
	for _, ip := range ips {
		hp := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		ln, err := net.Listen("tcp", hp)
		if err != nil {
			return portError("TCP", ip, port, err)
		}
		_ = ln.Close()
		pc, err := net.ListenPacket("udp", hp)
		if err != nil {
			return portError("UDP", ip, port, err)
		}
		_ = pc.Close()
	}
	return nil
}

func portError(proto string, ip netip.Addr, port int, err error) error {
	where := strconv.Itoa(port)
	if !ip.IsUnspecified() {
		where = net.JoinHostPort(ip.String(), where)
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("another cbnode (or something else) listens on %s %s: stop it or give --port", proto, where)
	}
	return fmt.Errorf("listen on %s %s: %w (check --listen and --port)", proto, where, err)
}
