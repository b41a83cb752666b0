package operator

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/cloud-barista/cbnode/api"
)

// authenticator holds the accepted credentials as SHA-256 digests (so every
// comparison has one length and runs in constant time).
type authenticator struct {
	bearer [][32]byte
	basic  [][32]byte // of "user:password"
}

// loadAuthFile reads a credentials file: one credential a line, "bearer
// TOKEN" or "basic USER:PASSWORD"; blank lines and '#' comments are skipped.
func loadAuthFile(path string) (*authenticator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("operator: credentials file: %w", err)
	}
	return parseAuth(b, path)
}

func parseAuth(b []byte, path string) (*authenticator, error) {
	a := &authenticator{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, cred, _ := strings.Cut(line, " ")
		cred = strings.TrimSpace(cred)
		switch {
		case cred == "":
			return nil, fmt.Errorf("operator: credentials file %s line %d: want 'bearer TOKEN' or 'basic USER:PASSWORD'", path, n)
		case strings.EqualFold(kind, "bearer"):
			a.bearer = append(a.bearer, sha256.Sum256([]byte(cred)))
		case strings.EqualFold(kind, "basic"):
			if u, p, ok := strings.Cut(cred, ":"); !ok || u == "" || p == "" {
				return nil, fmt.Errorf("operator: credentials file %s line %d: basic needs USER:PASSWORD", path, n)
			}
			a.basic = append(a.basic, sha256.Sum256([]byte(cred)))
		default:
			return nil, fmt.Errorf("operator: credentials file %s line %d: unknown kind %q (want bearer or basic)", path, n, kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("operator: credentials file %s: %w", path, err)
	}
	if len(a.bearer)+len(a.basic) == 0 {
		return nil, fmt.Errorf("operator: credentials file %s holds no credential (lines 'bearer TOKEN' or 'basic USER:PASSWORD')", path)
	}
	return a, nil
}

// match compares against every entry (no early exit).
func match(list [][32]byte, cred string) bool {
	d := sha256.Sum256([]byte(cred))
	ok := 0
	for _, want := range list {
		ok |= subtle.ConstantTimeCompare(d[:], want[:])
	}
	return ok == 1
}

// allowed checks the request's Authorization header.
func (a *authenticator) allowed(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return match(a.bearer, cred)
	case strings.EqualFold(scheme, "Basic"):
		u, p, ok := r.BasicAuth()
		return ok && match(a.basic, u+":"+p)
	}
	return false
}

// wrap refuses requests without valid credentials (401 with the
// challenges); GET /health stays open for probes, and so do the console's
// static files (/ and /ui/...: no data, so that a browser holding only a
// bearer token can load the page, which then sends the token).
func (a *authenticator) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		open := r.URL.Path == "/health" || r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/")
		if open && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.ServeHTTP(w, r)
			return
		}
		if !a.allowed(r) {
			w.Header().Add("WWW-Authenticate", `Bearer realm="cbnode operator"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="cbnode operator", charset="UTF-8"`)
			msg := "authentication required: send 'Authorization: Bearer TOKEN' or HTTP basic credentials from the operator's --auth-file"
			if r.Header.Get("Authorization") != "" {
				msg = "wrong credentials: the Authorization header matches no line of the operator's --auth-file"
			}
			api.WriteError(w, http.StatusUnauthorized, errors.New(msg))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// crossOriginGuard refuses writes a browser marks cross-origin: a browser
// that holds basic credentials for the operator would otherwise send them
// along with a page's forged request.
func crossOriginGuard(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			api.WriteError(w, http.StatusForbidden, fmt.Errorf("refused: cross-origin %s from a web page", r.Method))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopback reports whether a listen address stays on this machine.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("operator: listen address %q: %w (want HOST:PORT, e.g. %s)", addr, err, DefaultAddr)
	}
	if host == "localhost" {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, nil // a name: it may resolve anywhere
	}
	return ip.Unmap().IsLoopback(), nil
}
