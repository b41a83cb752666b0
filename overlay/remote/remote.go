// Package remote is how the operator reaches one member directly, over a
// libp2p stream, for what gossip does not carry:
//
//	details.go  the owner-signed details document (a cloud-information
//	            patch for one member), its replay guard and sequencer
//	remote.go   the two protocols: the member side (Serve) and the
//	            operator side (PushDetails, FetchNetworkingRule)
//
// DetailsProtocol: the operator sends a Details document; the member checks
// the owner signature, that it is the target, the age and the sequence,
// merges the patch and answers with its resulting cloud information.
// PathTableProtocol: the asker sends a certificate of this CLADNet for its
// own peer ID (the operator signs itself a short-lived one); the member
// answers with its networking rule only if it verifies and is not revoked.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

// The protocols.
const (
	DetailsProtocol   = "/cbnode/details/1.0.0"
	PathTableProtocol = "/cbnode/pathtable/1.0.0"
)

// maxRequest bounds a request; maxResponse an answer (a networking rule
// grows with the members).
const (
	maxRequest  = 16 << 10
	maxResponse = 4 << 20
)

// streamTimeout bounds one exchange on either side.
const streamTimeout = 10 * time.Second

// ErrRefused wraps the member's own refusal (as opposed to a failure to
// reach it).
var ErrRefused = errors.New("refused by the member")

// Config is the member side.
type Config struct {
	Host host.Host
	Spec *cladnet.Spec
	// Guard refuses replayed details documents.
	Guard *Guard
	// Revoked reports whether a certificate is revoked (optional).
	Revoked func(*cladnet.Certificate) bool
	// ApplyDetails merges a verified patch into this node's cloud
	// information and returns the result.
	ApplyDetails func(cost.CloudPatch) (cost.CloudInfo, error)
	// NetworkingRule is this node's networking rule.
	NetworkingRule func() (api.NetworkingRule, error)
	Logger         *slog.Logger
}

// Server is the member side of both protocols.
type Server struct {
	cfg Config
	wg  sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

type detailsAnswer struct {
	CloudInformation *cost.CloudInfo `json:"cloudInformation,omitempty"`
	Error            string          `json:"error,omitempty"`
}

type pathTableRequest struct {
	CladnetID string               `json:"cladnetId"`
	Cert      *cladnet.Certificate `json:"cert"`
}

type pathTableAnswer struct {
	NetworkingRule *api.NetworkingRule `json:"networkingRule,omitempty"`
	Error          string              `json:"error,omitempty"`
}

// Serve sets the stream handlers on cfg.Host; Close removes them.
func Serve(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg}
	cfg.Host.SetStreamHandler(DetailsProtocol, s.handle(s.details))
	cfg.Host.SetStreamHandler(PathTableProtocol, s.handle(s.pathTable))
	return s
}

// Close removes the handlers and waits for the exchanges under way.
func (s *Server) Close() {
	s.cfg.Host.RemoveStreamHandler(DetailsProtocol)
	s.cfg.Host.RemoveStreamHandler(PathTableProtocol)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// handle runs f on a stream's request and writes its answer; libp2p's
// goroutine is counted so Close can wait for it.
func (s *Server) handle(f func(from peer.ID, req []byte) any) network.StreamHandler {
	return func(st network.Stream) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = st.Reset()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(streamTimeout))
		req, err := io.ReadAll(io.LimitReader(st, maxRequest+1))
		if err != nil || len(req) > maxRequest {
			_ = st.Reset()
			return
		}
		b, err := json.Marshal(f(st.Conn().RemotePeer(), req))
		if err != nil {
			_ = st.Reset()
			return
		}
		_, _ = st.Write(b)
	}
}

func (s *Server) details(from peer.ID, req []byte) any {
	var d Details
	if err := json.Unmarshal(req, &d); err != nil {
		return detailsAnswer{Error: "details document: " + err.Error()}
	}
	self := s.cfg.Host.ID()
	if err := d.Verify(s.cfg.Spec, self, time.Now()); err != nil {
		s.cfg.Logger.Warn("refused a details document", "from", from, "err", err)
		return detailsAnswer{Error: err.Error()}
	}
	if err := s.cfg.Guard.Accept(d.Seq); err != nil {
		s.cfg.Logger.Warn("refused a details document", "from", from, "err", err)
		return detailsAnswer{Error: err.Error()}
	}
	ci, err := s.cfg.ApplyDetails(d.Patch)
	if err != nil {
		return detailsAnswer{Error: err.Error()}
	}
	s.cfg.Logger.Info("cloud details set by the CLADNet owner", "from", from, "seq", d.Seq, "details", ci)
	return detailsAnswer{CloudInformation: &ci}
}

// checkAsker accepts a certificate of this CLADNet for the stream's remote
// peer that is not revoked.
func (s *Server) checkAsker(from peer.ID, req *pathTableRequest) error {
	if req.CladnetID != s.cfg.Spec.ID {
		return fmt.Errorf("this node is in CLADNet %s, not %s", s.cfg.Spec.ID, req.CladnetID)
	}
	if req.Cert == nil {
		return errors.New("no certificate: only holders of a certificate of this CLADNet may ask")
	}
	if err := req.Cert.Verify(s.cfg.Spec, from, time.Now()); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if s.cfg.Revoked != nil && s.cfg.Revoked(req.Cert) {
		return fmt.Errorf("certificate of %s (host %s) is revoked", from, req.Cert.HostName)
	}
	return nil
}

func (s *Server) pathTable(from peer.ID, b []byte) any {
	var req pathTableRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return pathTableAnswer{Error: "path table request: " + err.Error()}
	}
	if err := s.checkAsker(from, &req); err != nil {
		s.cfg.Logger.Warn("refused a networking-rule request", "from", from, "err", err)
		return pathTableAnswer{Error: err.Error()}
	}
	nr, err := s.cfg.NetworkingRule()
	if err != nil {
		return pathTableAnswer{Error: err.Error()}
	}
	return pathTableAnswer{NetworkingRule: &nr}
}

// exchange sends req to p on proto and decodes the answer into out.
func exchange(ctx context.Context, h host.Host, p peer.ID, proto string, req, out any) error {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	st, err := h.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-remote"), p, protocol.ID(proto))
	if err != nil {
		return fmt.Errorf("open a stream to %s: %w", p, ctxErr(ctx, err))
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	if _, err := st.Write(b); err != nil {
		return fmt.Errorf("send to %s: %w", p, ctxErr(ctx, err))
	}
	if err := st.CloseWrite(); err != nil {
		return fmt.Errorf("send to %s: %w", p, ctxErr(ctx, err))
	}
	ans, err := io.ReadAll(io.LimitReader(st, maxResponse+1))
	if err != nil {
		return fmt.Errorf("answer of %s: %w", p, ctxErr(ctx, err))
	}
	if len(ans) > maxResponse {
		return fmt.Errorf("answer of %s: larger than %d bytes", p, maxResponse)
	}
	if err := json.Unmarshal(ans, out); err != nil {
		return fmt.Errorf("answer of %s: %w (an older cbnode without %s?)", p, err, proto)
	}
	return nil
}

// ctxErr makes a stream failure caused by the deadline say so
// (context.DeadlineExceeded), so callers can answer 504.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// PushDetails hands a signed details document to its member and returns
// the member's resulting cloud information. A refusal by the member wraps
// ErrRefused.
func PushDetails(ctx context.Context, h host.Host, p peer.ID, d *Details) (cost.CloudInfo, error) {
	var ans detailsAnswer
	if err := exchange(ctx, h, p, DetailsProtocol, d, &ans); err != nil {
		return cost.CloudInfo{}, err
	}
	if ans.Error != "" || ans.CloudInformation == nil {
		return cost.CloudInfo{}, fmt.Errorf("%w: %s", ErrRefused, ans.Error)
	}
	return *ans.CloudInformation, nil
}

// FetchNetworkingRule asks member p of CLADNet cladnetID for its networking
// rule, showing cert (a certificate of that CLADNet for h's own peer ID). A
// refusal by the member wraps ErrRefused.
func FetchNetworkingRule(ctx context.Context, h host.Host, p peer.ID, cladnetID string, cert *cladnet.Certificate) (api.NetworkingRule, error) {
	var ans pathTableAnswer
	if err := exchange(ctx, h, p, PathTableProtocol, pathTableRequest{CladnetID: cladnetID, Cert: cert}, &ans); err != nil {
		return api.NetworkingRule{}, err
	}
	if ans.Error != "" || ans.NetworkingRule == nil {
		return api.NetworkingRule{}, fmt.Errorf("%w: %s", ErrRefused, ans.Error)
	}
	return *ans.NetworkingRule, nil
}
