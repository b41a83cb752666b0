package names

import (
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cloud-barista/cbnode/overlay"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	return m
}

// aOf returns the A records' addresses of a reply.
func aOf(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func TestAnswer(t *testing.T) {
	tab := Build(testSpec, []overlay.Member{member(newPeer(t), "vm2", "10.77.0.12")}, testNow)
	cases := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string // the A record's address, "" for none
		auth   bool   // authoritative, with the zone's SOA when there is no answer
	}{
		{"vm2.lab.cbnode.", dns.TypeA, dns.RcodeSuccess, "10.77.0.12", true},
		{"VM2.Lab.CBNode.", dns.TypeA, dns.RcodeSuccess, "10.77.0.12", true},
		{"vm2.cbnode.", dns.TypeA, dns.RcodeSuccess, "10.77.0.12", true},
		{"vm2.lab.cbnode.", dns.TypeANY, dns.RcodeSuccess, "10.77.0.12", true},
		{"vm2.lab.cbnode.", dns.TypeAAAA, dns.RcodeSuccess, "", true}, // NODATA: the name exists
		{"vm2.lab.cbnode.", dns.TypeMX, dns.RcodeSuccess, "", true},
		{"vm3.lab.cbnode.", dns.TypeA, dns.RcodeNameError, "", true},
		{"vm3.lab.cbnode.", dns.TypeAAAA, dns.RcodeNameError, "", true},
		{"vm3.cbnode.", dns.TypeA, dns.RcodeNameError, "", true},
		{"x.vm2.lab.cbnode.", dns.TypeA, dns.RcodeNameError, "", true},
		{"lab.cbnode.", dns.TypeA, dns.RcodeSuccess, "", true},
		{"cbnode.", dns.TypeA, dns.RcodeSuccess, "", true},
		{"vm2.", dns.TypeA, dns.RcodeSuccess, "10.77.0.12", false}, // bare name, asked directly
		{"vm2.", dns.TypeAAAA, dns.RcodeSuccess, "", false},
		{"vm3.", dns.TypeA, dns.RcodeRefused, "", false},
		{"vm2.other.cbnode.", dns.TypeA, dns.RcodeRefused, "", false}, // another CLADNet's zone
		{"example.com.", dns.TypeA, dns.RcodeRefused, "", false},      // never forwards
		{"vm2.example.com.", dns.TypeA, dns.RcodeRefused, "", false},
		{"vm2.lab.", dns.TypeA, dns.RcodeRefused, "", false},
		{".", dns.TypeNS, dns.RcodeRefused, "", false},
	}
	for _, tc := range cases {
		r := answer(tab, query(tc.name, tc.qtype), testNow)
		what := tc.name + " " + dns.TypeToString[tc.qtype]
		if r.Rcode != tc.rcode {
			t.Errorf("%s: rcode %s, want %s", what, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
		if got := aOf(r); (tc.answer == "" && len(got) != 0) || (tc.answer != "" && (len(got) != 1 || got[0] != tc.answer)) {
			t.Errorf("%s: answer %v, want %q", what, got, tc.answer)
		}
		if r.Authoritative != tc.auth {
			t.Errorf("%s: authoritative %v, want %v", what, r.Authoritative, tc.auth)
		}
		if tc.auth && len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: no SOA in the authority section: %v", what, r.Ns)
		}
		if r.RecursionAvailable {
			t.Errorf("%s: offers recursion", what)
		}
		if !r.Response {
			t.Errorf("%s: not a response", what)
		}
		for _, rr := range r.Answer {
			if rr.Header().Ttl != TTL {
				t.Errorf("%s: TTL %d, want %d", what, rr.Header().Ttl, TTL)
			}
		}
	}
	if r := answer(tab, query("lab.cbnode.", dns.TypeSOA), testNow); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA at the apex: %v", r.Answer)
	}
	// A certificate that ended since the table was built: gone at once.
	if r := answer(tab, query("vm2.lab.cbnode.", dns.TypeA), testNow.Add(2*time.Hour)); r.Rcode != dns.RcodeNameError {
		t.Errorf("vm2 after its certificate's end: %s", dns.RcodeToString[r.Rcode])
	}
	upd := query("lab.cbnode.", dns.TypeSOA)
	upd.Opcode = dns.OpcodeUpdate
	if r := answer(tab, upd, testNow); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("update: %s, want NOTIMP", dns.RcodeToString[r.Rcode])
	}
	two := query("vm2.lab.cbnode.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := answer(tab, two, testNow); r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", dns.RcodeToString[r.Rcode])
	}
	chaos := query("vm2.lab.cbnode.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	if r := answer(tab, chaos, testNow); r.Rcode != dns.RcodeRefused {
		t.Errorf("class CH: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	// A table whose CLADNet name is no domain name still serves <host>.cbnode.
	spec := *testSpec
	spec.Name = "a..b"
	odd := Build(&spec, []overlay.Member{member(newPeer(t), "vm2", "10.77.0.12")}, testNow)
	if r := answer(odd, query("vm2.cbnode.", dns.TypeA), testNow); len(aOf(r)) != 1 {
		t.Errorf("vm2.cbnode. without a CLADNet zone: %v", r)
	}
}

// TestServer queries a real server on 127.0.0.1 over UDP and TCP, swaps its
// table and closes it.
func TestServer(t *testing.T) {
	p2 := newPeer(t)
	now := time.Now()
	live := member(p2, "vm2", "10.77.0.12")
	live.Ann.Cert.NotBefore, live.Ann.Cert.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
	var cur atomic.Pointer[Table]
	cur.Store(Build(testSpec, []overlay.Member{live}, now))
	srv, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), cur.Load, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Addr().Port() == 0 {
		t.Fatal("no port")
	}
	for _, net := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: net, Timeout: 5 * time.Second}
		r, _, err := c.Exchange(query("vm2.lab.cbnode.", dns.TypeA), srv.Addr().String())
		if err != nil {
			t.Fatalf("%s: %v", net, err)
		}
		if got := aOf(r); len(got) != 1 || got[0] != "10.77.0.12" {
			t.Errorf("%s: vm2.lab.cbnode. → %v (%s)", net, got, dns.RcodeToString[r.Rcode])
		}
		r, _, err = c.Exchange(query("example.com.", dns.TypeA), srv.Addr().String())
		if err != nil || r.Rcode != dns.RcodeRefused {
			t.Errorf("%s: example.com. → %v %v, want REFUSED", net, r, err)
		}
	}
	// vm2 is lost: the next query sees the new table.
	cur.Store(Build(testSpec, nil, now))
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(query("vm2.lab.cbnode.", dns.TypeA), srv.Addr().String())
	if err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("vm2 after it was lost: %v %v, want NXDOMAIN", r, err)
	}
	srv.Close()
	c.Timeout = 300 * time.Millisecond
	if _, _, err := c.Exchange(query("vm2.lab.cbnode.", dns.TypeA), srv.Addr().String()); err == nil {
		t.Error("the server answers after Close")
	}
	srv.Close() // idempotent
}

func TestListenBusy(t *testing.T) {
	var cur atomic.Pointer[Table]
	cur.Store(Build(testSpec, nil, time.Now()))
	a, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), cur.Load, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := Listen(a.Addr(), cur.Load, quiet); err == nil {
		t.Fatal("a second server bound the same address")
	} else if t.Log(err); !containsAll(err.Error(), a.Addr().String(), "another DNS server") {
		t.Errorf("error %q does not say where and why", err)
	}
}
