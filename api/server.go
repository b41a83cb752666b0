package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/ipam"
)

// The OpenAPI description and the status page are served as they are.
var (
	//go:embed openapi.json
	openAPI []byte
	//go:embed ui.html
	uiPage []byte
)

// DefaultAddr is where the local API listens.
const DefaultAddr = "127.0.0.1:7470"

// Backend is what a running node offers the API.
type Backend interface {
	Status() Status
	// CLADNet is the joined CLADNet's specification.
	CLADNet() CLADNetSpecification
	Peers() []Peer
	// Peer finds a member by peer ID (hostId), host name or overlay IP.
	Peer(hostID string) (Peer, bool)
	// SetDetails updates this node's own cloud information, field by field.
	SetDetails(hostID string, p cost.CloudPatch) (Peer, error)
	Ping(ctx context.Context, target string) (PingResult, error)
	// Rules returns the cost rules in force; SubmitRules applies and
	// gossips a signed rules document.
	Rules() *cost.Rules
	SubmitRules(ctx context.Context, doc []byte) (*cost.Rules, error)
	// Revocation returns the CLADNet's revocation list in force (nil: none
	// yet); SubmitRevocation applies and gossips a signed list.
	Revocation() *cladnet.Revocations
	SubmitRevocation(ctx context.Context, doc []byte) (*cladnet.Revocations, error)
	// NetworkingRule is this node's path table (hostID must be this node).
	NetworkingRule(hostID string) (NetworkingRule, error)
	// Cost is the metered spend report.
	Cost() cost.Report
	// Metrics serves Prometheus metrics.
	Metrics() http.Handler
	// Netcheck dials every bootstrap node and relay now and reports what
	// it found, with what AutoNAT and the peers say about this node.
	Netcheck(ctx context.Context) (Netcheck, error)
}

// Errors a Backend returns to pick the HTTP status.
var (
	ErrNotFound  = errors.New("not found")
	ErrForbidden = errors.New("forbidden")
	ErrBadInput  = errors.New("bad input")
	ErrConflict  = errors.New("conflict")
)

// Server serves the local API. Every request first passes the guard of
// guard.go: its Host must name this machine (localhost, *.localhost,
// 127.0.0.0/8, ::1, the IP literal the connection arrived on, the host name
// when listening on a non-loopback address, or AllowedHosts), and requests
// other than GET, HEAD and OPTIONS must not come cross-origin from a browser
// and must not label their body as a form or plain text.
type Server struct {
	// AllowedHosts are further names (or IP literals) the Host header may
	// give, e.g. a DNS name of this VM; ports are ignored. Set it before
	// Serve.
	AllowedHosts []string

	b      Backend
	log    *slog.Logger
	mux    *Mux
	cop    *http.CrossOriginProtection
	policy atomic.Pointer[hostPolicy]
}

// NewServer builds the handler set; b may be nil for a node without a
// CLADNet (only /health and the address-space calculator then work).
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{b: b, log: log, mux: NewMux(), cop: http.NewCrossOriginProtection()}
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "healthy", "version": Version})
	})
	s.mux.HandleFunc("POST /v1/cladnet/availableIPv4AddressSpaces", s.addressSpaces)
	s.mux.HandleFunc("GET /v1/status", s.withBackend(s.status))
	s.mux.HandleFunc("GET /v1/cladnet", s.cladnets)
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}", s.withBackend(s.cladnet))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer", s.withBackend(s.peers))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer/{hostId}", s.withBackend(s.peer))
	s.mux.HandleFunc("PUT /v1/cladnet/{cladnetId}/peer/{hostId}/details", s.withBackend(s.details))
	s.mux.HandleFunc("POST /v1/ping", s.withBackend(s.ping))
	s.mux.HandleFunc("GET /v1/netcheck", s.withBackend(s.netcheck))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/rules", s.withBackend(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Rules())
	}))
	s.mux.HandleFunc("PUT /v1/cladnet/{cladnetId}/rules", s.withBackend(s.putRules))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/revocation", s.withBackend(func(w http.ResponseWriter, r *http.Request) {
		doc := s.b.Revocation()
		if doc == nil {
			// Nothing revoked yet: an empty, unsigned list of version 0.
			doc = &cladnet.Revocations{CladnetID: s.b.Status().CladnetID, Entries: []cladnet.Revocation{}}
		}
		writeJSON(w, http.StatusOK, doc)
	}))
	s.mux.HandleFunc("PUT /v1/cladnet/{cladnetId}/revocation", s.withBackend(s.putRevocation))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer/{hostId}/networkingRule", s.withBackend(s.networkingRule))
	s.mux.HandleFunc("GET /v1/cladnet/{cladnetId}/cost", s.withBackend(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.b.Cost())
	}))
	s.mux.HandleFunc("GET /metrics", s.withBackend(func(w http.ResponseWriter, r *http.Request) {
		s.b.Metrics().ServeHTTP(w, r)
	}))
	s.mux.HandleFunc("GET /openapi.json", ServeOpenAPI)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; img-src 'self' data:")
		_, _ = w.Write(uiPage)
	})
	return s
}

// Routes are the patterns ("METHOD /path") the server serves.
func (s *Server) Routes() []string { return s.mux.Patterns() }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.guard(w, r) {
		return
	}
	s.mux.ServeHTTP(&jsonErrors{ResponseWriter: w, r: r}, r)
}

// jsonErrors turns the mux's own plain-text errors (404 no such endpoint,
// 405 wrong method) into the API's {"error": "..."} bodies.
type jsonErrors struct {
	http.ResponseWriter
	r        *http.Request
	swallow  bool
	answered bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if j.answered {
		return
	}
	j.answered = true
	if code >= 400 && strings.HasPrefix(j.Header().Get("Content-Type"), "text/plain") {
		j.swallow = true
		msg := fmt.Sprintf("no such endpoint: %s %s", j.r.Method, j.r.URL.Path)
		if code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s not allowed on %s (allowed: %s)", j.r.Method, j.r.URL.Path, j.Header().Get("Allow"))
		}
		j.Header().Del("X-Content-Type-Options")
		writeErr(j.ResponseWriter, code, errors.New(msg))
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if !j.answered {
		j.WriteHeader(http.StatusOK)
	}
	if j.swallow {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

// Serve listens on addr until ctx ends, then shuts the server down (open
// requests get two seconds). The channel receives the server's error (nil
// after a clean shutdown) once both of Serve's goroutines have returned.
// The listen address decides which Host headers are accepted besides the
// loopback ones (see Server).
func (s *Server) Serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("local API on %s: %w (another cbnode running? give --api another address, or --api '' to disable it)", addr, err)
	}
	if err := s.learnListener(ln.Addr()); err != nil {
		ln.Close()
		return nil, nil, err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		served <- err
	}()
	done := make(chan error, 1)
	go func() {
		var err error
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			err = <-served
		case err = <-served:
		}
		done <- err
	}()
	return ln.Addr(), done, nil
}

func (s *Server) withBackend(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.b == nil {
			writeErr(w, http.StatusServiceUnavailable, errors.New("this node has not joined a CLADNet"))
			return
		}
		if id := r.PathValue("cladnetId"); id != "" {
			st := s.b.Status()
			if id != st.CladnetID && id != st.Cladnet {
				writeErr(w, http.StatusNotFound, fmt.Errorf("CLADNet %q is not joined by this node (it is in %s, %s)", id, st.Cladnet, st.CladnetID))
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.b.Status())
}

// cladnets lists the CLADNets this node joined: one, or none without a
// backend.
func (s *Server) cladnets(w http.ResponseWriter, r *http.Request) {
	out := CLADNetSpecifications{CLADNetSpecifications: []CLADNetSpecification{}}
	if s.b != nil {
		out.CLADNetSpecifications = append(out.CLADNetSpecifications, s.spec())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) cladnet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.spec())
}

// spec is the joined CLADNet with the rule type in force (the signed rules
// the owner spread may be newer than the token's spec).
func (s *Server) spec() CLADNetSpecification {
	spec := s.b.CLADNet()
	if r := s.b.Rules(); r != nil && r.RuleType != "" {
		spec.RuleType = r.RuleType
	}
	return spec
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	ps := s.b.Peers()
	if ps == nil {
		ps = []Peer{}
	}
	writeJSON(w, http.StatusOK, Peers{Peers: ps})
}

func (s *Server) peer(w http.ResponseWriter, r *http.Request) {
	p, ok := s.b.Peer(r.PathValue("hostId"))
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Errorf("peer %q is not a member", r.PathValue("hostId")))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) details(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CloudInformation *cost.CloudPatch `json:"cloudInformation"`
	}
	if err := decode(r, &body); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if body.CloudInformation == nil {
		writeErr(w, http.StatusBadRequest, errors.New(`body needs {"cloudInformation": {...}}`))
		return
	}
	p, err := s.b.SetDetails(r.PathValue("hostId"), *body.CloudInformation)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Target string `json:"target"`
	}
	if err := decode(r, &body); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := s.b.Ping(ctx, body.Target)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) netcheck(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 12*time.Second)
	defer cancel()
	res, err := s.b.Netcheck(ctx)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) putRules(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	doc, err := s.b.SubmitRules(r.Context(), body)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) putRevocation(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cladnet.MaxRevocationsSize))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	doc, err := s.b.SubmitRevocation(r.Context(), body)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) networkingRule(w http.ResponseWriter, r *http.Request) {
	nr, err := s.b.NetworkingRule(r.PathValue("hostId"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, nr)
}

func (s *Server) addressSpaces(w http.ResponseWriter, r *http.Request) {
	var req AddressSpaceRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	res, err := ComputeAddressSpaces(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ComputeAddressSpaces answers an address-space request (also used by the CLI).
func ComputeAddressSpaces(req AddressSpaceRequest) (AddressSpaces, error) {
	used, err := ipam.ParsePrefixes(req.IPv4CIDRs)
	if err != nil {
		return AddressSpaces{}, err
	}
	if req.Hosts == 0 {
		req.Hosts = len(used) + 1 // cb-network sized by the number of VMs
	}
	rec, err := ipam.Recommend(used, req.Hosts)
	if err != nil {
		return AddressSpaces{}, err
	}
	res := AddressSpaces{Recommended: rec.String(), RecommendedIpv4: rec.String(), Hosts: req.Hosts, Headroom: ipam.DefaultHeadroom,
		Space10s: []string{}, Space172s: []string{}, Space192s: []string{}}
	for _, fs := range ipam.FreeSpaces(used) {
		var list []string
		for _, p := range fs.Free {
			list = append(list, p.String())
		}
		if list == nil {
			list = []string{}
		}
		switch fs.Block.Addr().As4()[0] {
		case 10:
			res.Space10s = list
		case 172:
			res.Space172s = list
		case 192:
			res.Space192s = list
		}
	}
	return res, nil
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrBadInput):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error()})
}
