package names

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// TTL is the lifetime of every answer, in seconds: short, so a lost member's
// name leaves resolver caches within seconds.
const TTL = 5

// Server answers DNS queries for a name table on one address, over UDP and
// TCP. It owns its serving goroutines: Close stops and waits for them.
type Server struct {
	addr  netip.AddrPort
	table func() *Table
	udp   *dns.Server
	tcp   *dns.Server
	wg    sync.WaitGroup
	once  sync.Once
}

// Listen binds addr (UDP and TCP; port 0 picks one free on both) and serves
// the tables table returns (the current one at each query).
func Listen(addr netip.AddrPort, table func() *Table, log *slog.Logger) (*Server, error) {
	pc, ln, err := bind(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{addr: netip.AddrPortFrom(addr.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port)), table: table}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if err := w.WriteMsg(answer(s.table(), req, time.Now())); err != nil {
			log.Debug("names: DNS reply not sent", "to", w.RemoteAddr(), "err", err)
		}
	})
	// Shutdown refuses a server that has not started yet (and it would then
	// serve forever): Listen returns once both have started.
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, NotifyStartedFunc: started.Done}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				log.Debug("names: DNS server ended", "addr", s.addr, "err", err)
			}
		}()
	}
	started.Wait()
	return s, nil
}

// bind opens the UDP and TCP sockets on addr; with port 0 it retries until
// one port is free for both.
func bind(addr netip.AddrPort) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp4", addr.String())
		if err != nil {
			return nil, nil, fmt.Errorf("DNS server on %s (udp): %w%s", addr, err, bindHint(err))
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr.Addr(), uint16(port)).String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = fmt.Errorf("DNS server on %s (tcp): %w%s", addr, err, bindHint(err))
		if addr.Port() != 0 {
			break
		}
	}
	return nil, nil, lastErr
}

func bindHint(err error) string {
	switch {
	case errors.Is(err, os.ErrPermission):
		return " (port 53 needs root or CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRINUSE):
		return " (another DNS server listens there or on all addresses: stop it, or bind it to specific addresses)"
	}
	return ""
}

// Addr is the address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.once.Do(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
		s.wg.Wait()
	})
}

// answer is the server's reply to req from table t at now. Within the
// CLADNet's zone and cbnode. the server is authoritative: A records for
// live names, NODATA for other types of a name that exists, NXDOMAIN for
// names that do not. A bare host name is answered when it resolves and
// refused otherwise; everything else is refused: the server never forwards
// and never recurses.
func answer(t *Table, req *dns.Msg, now time.Time) *dns.Msg {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return resp
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		return resp
	}
	resp.SetReply(req)
	resp.RecursionAvailable = false
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(1232, false)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	zone, host, ok := split(t, name)
	if !ok {
		// A bare host name, asked directly.
		if ip, found := t.Lookup(strings.TrimSuffix(name, "."), now); dns.CountLabel(name) == 1 && found {
			if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
				resp.Answer = append(resp.Answer, aRecord(q.Name, ip))
			}
			return resp
		}
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	resp.Authoritative = true
	switch {
	case host == "":
		// The zone's apex exists.
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, soa(zone))
		} else {
			resp.Ns = append(resp.Ns, soa(zone))
		}
	default:
		ip, found := t.Lookup(host, now)
		switch {
		case !found:
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, soa(zone))
		case q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY:
			resp.Answer = append(resp.Answer, aRecord(q.Name, ip))
		default:
			resp.Ns = append(resp.Ns, soa(zone))
		}
	}
	return resp
}

// split places the lower-case fqdn name in one of the table's zones: zone
// is the zone, host the host label ("" at the apex; "-" for a deeper name,
// which never resolves). ok is false for names outside both zones, and for
// names in another CLADNet's zone (<host>.<other>.cbnode).
func split(t *Table, name string) (zone, host string, ok bool) {
	for _, z := range []string{t.zone, TopZone + "."} {
		if z == "" {
			continue
		}
		if name == z {
			return z, "", true
		}
		if !strings.HasSuffix(name, "."+z) {
			continue
		}
		rest := strings.TrimSuffix(name, "."+z)
		if z == TopZone+"." && strings.Contains(rest, ".") {
			// <a>.<b>.cbnode: another CLADNet's name (ours matched above).
			return "", "", false
		}
		if strings.Contains(rest, ".") {
			return z, "-", true
		}
		return z, rest, true
	}
	return "", "", false
}

func aRecord(name string, ip netip.Addr) dns.RR {
	return &dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: TTL},
		A:   net.IP(ip.AsSlice()),
	}
}

func soa(zone string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  1,
		Refresh: 60,
		Retry:   10,
		Expire:  3600,
		Minttl:  TTL,
	}
}
