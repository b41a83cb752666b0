package api

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// The local API has no authentication: whoever can reach it controls the
// node. Its listener keeps other machines out (127.0.0.1 by default); the
// guard keeps out the one client that runs on this machine for someone
// else, a web browser:
//
//   - Host check (DNS rebinding). A page from evil.example can make its own
//     name resolve to 127.0.0.1 and then read the API as "same origin". So
//     every request must name the API by an address of this machine:
//     localhost or *.localhost (browsers resolve those to loopback
//     themselves), an IP literal in 127.0.0.0/8 or ::1, the IP literal the
//     connection arrived on (so http://10.0.0.5:7470 works when the API
//     listens on 10.0.0.5 or 0.0.0.0: a rebound name is never an IP
//     literal), the machine's host name when the API listens on a
//     non-loopback address, and Server.AllowedHosts. Any port is accepted.
//   - Cross-origin writes (CSRF). A page may send a "simple" POST to any
//     address without asking; it cannot read the answer, but the change is
//     made. Every method but GET, HEAD and OPTIONS is refused when the
//     browser marks it cross-origin (Sec-Fetch-Site, or an Origin that is
//     not the request's own scheme://host:port), by net/http's
//     CrossOriginProtection. Clients that send neither header (curl, the
//     cbnode CLI) pass.
//   - A write whose body is labelled text/plain, form-urlencoded or
//     multipart (the content types a page may send anywhere without a CORS
//     preflight) is refused: JSON bodies are application/json, or
//     unlabelled. Other types need a preflight, which the API never grants
//     (it sends no Access-Control-Allow-* headers). The cbnode CLI sends
//     application/json; 'curl -d' sends form-urlencoded and needs
//     -H 'Content-Type: application/json'.
//
// Refusals are 403 (415 for the content type) with the usual
// {"error": "..."} body saying what to do instead.

// hostPolicy is what Serve learns from its listener.
type hostPolicy struct {
	hostname string // os.Hostname, lower case; "" when bound to loopback
}

// guard answers and returns false if r must not reach the handlers.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) bool {
	if !s.hostAllowed(r) {
		writeErr(w, http.StatusForbidden, fmt.Errorf("refused: Host %q does not name this machine (DNS rebinding guard); use %s", r.Host, s.suggestURL(r)))
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if err := s.cop.Check(r); err != nil {
		writeErr(w, http.StatusForbidden, fmt.Errorf("refused: cross-origin %s from %q; changes are taken only from this API's own page or from non-browser clients such as curl and the cbnode CLI", r.Method, originOf(r)))
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && corsSafelisted(ct) {
		writeErr(w, http.StatusUnsupportedMediaType, fmt.Errorf("refused: a %s body must be sent as Content-Type: application/json, not %q (curl: add -H 'Content-Type: application/json')", r.Method, ct))
		return false
	}
	return true
}

// corsSafelisted reports the content types a web page may send to any
// address without a CORS preflight. JSON bodies never need them; refusing
// them keeps out a browser that sends neither Origin nor Sec-Fetch-Site.
func corsSafelisted(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparsable: browsers treat it as text/plain-like too
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded", "multipart/form-data":
		return true
	}
	return false
}

func originOf(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	return "Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site")
}

// hostAllowed applies the Host rules of the comment above.
func (s *Server) hostAllowed(r *http.Request) bool {
	host := hostOnly(r.Host)
	if host == "" {
		return false
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() {
			return true
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ap, err := netip.ParseAddrPort(la.String()); err == nil && ap.Addr().Unmap().WithZone("") == ip.WithZone("") {
				return true
			}
		}
		// Other IP literals fall through: AllowedHosts may list one.
	}
	if p := s.policy.Load(); p != nil && p.hostname != "" && host == p.hostname {
		return true
	}
	for _, h := range s.AllowedHosts {
		if hostOnly(h) == host {
			return true
		}
	}
	return false
}

// hostOnly lowers a Host header (or an AllowedHosts entry) to a name or IP
// without port, brackets or trailing dot.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// suggestURL is the address to use instead: the one the connection came in on.
func (s *Server) suggestURL(r *http.Request) string {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			if ap.Addr().Unmap().IsLoopback() {
				return fmt.Sprintf("http://localhost:%d", ap.Port())
			}
			return "http://" + netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		}
	}
	return "http://localhost:" + portOf(DefaultAddr)
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

// learnListener sets what the Host check needs to know about the listener:
// on a non-loopback address the machine's host name is accepted too.
func (s *Server) learnListener(a net.Addr) error {
	p := &hostPolicy{}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return fmt.Errorf("local API listener %s: %w", a, err)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		if h, err := os.Hostname(); err == nil {
			p.hostname = hostOnly(h)
		}
	}
	s.policy.Store(p)
	return nil
}
