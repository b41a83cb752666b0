package api

import (
	"net"
	"net/http"
)

// The helpers below let other HTTP services of cbnode (the operator, package
// operator) answer in the local API's style: JSON bodies, errors as
// {"error": "..."} with a fitting status, the mux's own 404/405 turned into
// JSON, and the same browser guard.

// WriteJSON writes v as indented JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// WriteError writes {"error": err} with status code.
func WriteError(w http.ResponseWriter, code int, err error) { writeErr(w, code, err) }

// DecodeJSON decodes a JSON request body (at most 1 MiB, unknown fields
// refused) into v.
func DecodeJSON(r *http.Request, v any) error { return decode(r, v) }

// StatusOf maps ErrNotFound, ErrForbidden, ErrBadInput, ErrConflict and
// context deadlines (wrapped anywhere in err) to their HTTP status; anything
// else is 500.
func StatusOf(err error) int { return statusOf(err) }

// JSONErrors wraps h so that the plain-text 404 and 405 answers of an
// http.ServeMux become {"error": "..."} bodies naming the method and path.
func JSONErrors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&jsonErrors{ResponseWriter: w, r: r}, r)
	})
}

// Guard is the local API's browser guard (see guard.go: Host check against
// DNS rebinding, no cross-origin writes, no form or text/plain bodies) for
// another handler. Learn must be called with the listener's address before
// serving.
type Guard struct{ s *Server }

// NewGuard makes a guard; allowedHosts are further Host names to accept.
func NewGuard(allowedHosts []string) *Guard {
	return &Guard{s: &Server{AllowedHosts: allowedHosts, cop: http.NewCrossOriginProtection()}}
}

// Learn tells the guard where the service listens.
func (g *Guard) Learn(a net.Addr) error { return g.s.learnListener(a) }

// Wrap passes the requests the guard lets through to h.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.s.guard(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// ServeOpenAPI serves the OpenAPI document (openapi.json) that describes
// both the local API and the operator's.
func ServeOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}

// OpenAPI is a copy of the OpenAPI document.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// Mux is an http.ServeMux that remembers its patterns, so a test can check
// every route a server registers against the OpenAPI document.
type Mux struct {
	*http.ServeMux
	patterns []string
}

// NewMux makes an empty Mux.
func NewMux() *Mux { return &Mux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern ("METHOD /path").
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// HandleFunc registers h for pattern ("METHOD /path").
func (m *Mux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.ServeMux.HandleFunc(pattern, h)
	m.patterns = append(m.patterns, pattern)
}

// Patterns are the registered patterns, in registration order.
func (m *Mux) Patterns() []string { return append([]string(nil), m.patterns...) }
