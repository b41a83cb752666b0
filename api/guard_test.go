package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestGuard(t *testing.T) {
	s := NewServer(&fakeBackend{}, nil)
	s.AllowedHosts = []string{"VM1.example.org:7470"}
	srv := httptest.NewServer(s)
	defer srv.Close()
	self := srv.Listener.Addr().String() // 127.0.0.1:port
	const space = `{"ipv4CIDRs":["192.168.1.0/24"],"hosts":3}`
	for _, tc := range []struct {
		name, method, path, host, body string
		hdr                            map[string]string
		code                           int
		contains                       string
	}{
		// DNS rebinding: the Host must name this machine.
		{"foreign host", "GET", "/v1/status", "evil.example", "", nil, 403, "DNS rebinding"},
		{"foreign host with port", "GET", "/health", "evil.example:7470", "", nil, 403, "use http://localhost:"},
		{"rebinding-style name", "GET", "/health", "127.0.0.1.nip.io:7470", "", nil, 403, "DNS rebinding"},
		{"foreign host, write", "POST", "/v1/cladnet/availableIPv4AddressSpaces", "evil.example", space, nil, 403, "DNS rebinding"},
		{"foreign IP literal", "GET", "/health", "10.9.9.9:7470", "", nil, 403, "DNS rebinding"},
		{"localhost", "GET", "/v1/status", "localhost", "", nil, 200, "cnabc"},
		{"localhost:port", "GET", "/health", "localhost:7470", "", nil, 200, "healthy"},
		{"LOCALHOST.", "GET", "/health", "LOCALHOST.:7470", "", nil, 200, "healthy"},
		{"*.localhost", "GET", "/health", "api.localhost:7470", "", nil, 200, "healthy"},
		{"127.0.0.1", "GET", "/health", "127.0.0.1", "", nil, 200, "healthy"},
		{"127/8 with port", "GET", "/health", "127.1.2.3:80", "", nil, 200, "healthy"},
		{"[::1]:port", "GET", "/health", "[::1]:7470", "", nil, 200, "healthy"},
		{"[::1]", "GET", "/health", "[::1]", "", nil, 200, "healthy"},
		{"AllowedHosts, any port", "GET", "/health", "vm1.example.org:8080", "", nil, 200, "healthy"},
		// Writes: no cross-origin browser requests.
		{"cross-origin POST", "POST", "/v1/cladnet/availableIPv4AddressSpaces", self, space,
			map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, 403, "cross-origin POST"},
		{"cross-origin text/plain POST", "POST", "/v1/ping", self, `{"target":"x"}`,
			map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403, "cross-origin"},
		{"cross-origin PUT rules", "PUT", "/v1/cladnet/cnabc/rules", self, `{}`,
			map[string]string{"Origin": "http://evil.example"}, 403, "cross-origin PUT"},
		{"opaque origin", "PUT", "/v1/cladnet/cnabc/peer/vm1/details", self, `{"cloudInformation":{}}`,
			map[string]string{"Origin": "null"}, 403, "cross-origin"},
		{"other local origin", "POST", "/v1/ping", self, `{"target":"x"}`,
			map[string]string{"Origin": "http://localhost:3000"}, 403, "cross-origin"},
		{"Sec-Fetch-Site cross-site", "POST", "/v1/ping", self, `{"target":"x"}`,
			map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"same origin", "POST", "/v1/cladnet/availableIPv4AddressSpaces", self, space,
			map[string]string{"Origin": "http://" + self, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}, 200, "recommended"},
		{"no Origin (curl, CLI)", "POST", "/v1/cladnet/availableIPv4AddressSpaces", self, space,
			map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200, "recommended"},
		{"no Origin, no content type", "PUT", "/v1/cladnet/cnabc/peer/vm1/details", self, `{"cloudInformation":{"providerName":"aws"}}`, nil, 200, "aws"},
		{"form body", "POST", "/v1/ping", self, `{"target":"x"}`,
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"text/plain body", "PUT", "/v1/cladnet/cnabc/rules", self, `{}`,
			map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, 415, "application/json"},
		// Reads: any Origin may ask, the browser gets no CORS grant to read it.
		{"GET, foreign Origin", "GET", "/v1/status", self, "",
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 200, "cnabc"},
		{"preflight", "OPTIONS", "/v1/ping", self, "",
			map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, 405, "not allowed"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Host = tc.host
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.contains) {
			t.Errorf("%s: %s %s Host %q: %d %s, want %d containing %q", tc.name, tc.method, tc.path, tc.host, resp.StatusCode, b, tc.code, tc.contains)
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: CORS header %s: %s", tc.name, k, resp.Header.Get(k))
			}
		}
		if resp.StatusCode == 403 || resp.StatusCode == 415 {
			var e Error
			if json.Unmarshal(b, &e) != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
				t.Errorf("%s: refusal is not a one-line {\"error\"}: %s", tc.name, b)
			}
		}
	}
}

// TestGuardListener checks what the listen address adds: the IP literal a
// connection arrived on, and the host name when not bound to loopback.
func TestGuardListener(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil || hostname == "" || strings.EqualFold(hostname, "localhost") {
		t.Skip("no usable host name")
	}
	check := func(s *Server, local, host string) int {
		req := httptest.NewRequest("GET", "/health", nil)
		req.Host = host
		if local != "" {
			la, _ := net.ResolveTCPAddr("tcp", local)
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, la))
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		return w.Code
	}
	loop := NewServer(nil, nil)
	if err := loop.learnListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7470}); err != nil {
		t.Fatal(err)
	}
	any := NewServer(nil, nil)
	if err := any.learnListener(&net.TCPAddr{IP: net.IPv4zero, Port: 7470}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		s           *Server
		local, host string
		code        int
	}{
		{"loopback-bound, host name", loop, "127.0.0.1:7470", hostname + ":7470", 403},
		{"any-bound, host name", any, "10.1.2.3:7470", strings.ToUpper(hostname) + ":7470", 200},
		{"any-bound, arrival IP", any, "10.1.2.3:7470", "10.1.2.3:7470", 200},
		{"any-bound, other IP", any, "10.1.2.3:7470", "10.1.2.4:7470", 403},
		{"any-bound, foreign name", any, "10.1.2.3:7470", "evil.example", 403},
		{"no listener known, example.com", NewServer(nil, nil), "", "example.com", 403},
	} {
		if code := check(tc.s, tc.local, tc.host); code != tc.code {
			t.Errorf("%s: Host %q via %s: %d, want %d", tc.name, tc.host, tc.local, code, tc.code)
		}
	}
}
