package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/cladnet"
)

// The introduction is how two members admit each other to the gossip
// before either's announcement reached the other's members table: the
// dialler sends its certificate, the other verifies it (for the stream's
// peer ID, this CLADNet, the validity window, the revocation list) and
// only then answers with its own. A peer without a valid certificate gets
// the stream reset and learns nothing. A node introduces itself (at most
// once per introRetry per peer) to a peer not yet admitted that joined
// the CLADNet's members topic and that it dialled itself — so it shows
// its certificate first only to a peer it chose to dial (a rendezvous
// provider, an announced member, a DHT peer) that also claims the
// CLADNet, never to whoever connects to it or merely subscribes.
const (
	introTimeout = 5 * time.Second
	introRetry   = 30 * time.Second
	introWorkers = 4
	introQueue   = 256
	maxCertBytes = 8 << 10
)

func introProtocol(cladnetID string) protocol.ID {
	return protocol.ID("/cbnode/cladnet/" + cladnetID + "/introduce/1.0.0")
}

// IntroducerConfig configures an Introducer.
type IntroducerConfig struct {
	Host      host.Host
	Spec      *cladnet.Spec
	Cert      func() *cladnet.Certificate // this node's certificate in force
	Revoked   func(*cladnet.Certificate) bool
	Admission *Admission
	Logger    *slog.Logger
}

// Introducer runs the introduction protocol of one CLADNet.
type Introducer struct {
	cfg    IntroducerConfig
	queue  chan peer.ID
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	tried map[peer.ID]time.Time // last introduction attempt, bounded
}

// StartIntroducer serves the protocol and runs the introductions asked
// for by Introduce, until Close.
func StartIntroducer(ctx context.Context, cfg IntroducerConfig) *Introducer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	in := &Introducer{cfg: cfg, queue: make(chan peer.ID, introQueue), cancel: cancel, tried: map[peer.ID]time.Time{}}
	cfg.Host.SetStreamHandler(introProtocol(cfg.Spec.ID), in.serve)
	for range introWorkers {
		in.wg.Add(1)
		go in.work(ctx)
	}
	return in
}

// Introduce queues an introduction to p (showing p this node's
// certificate first) if this node holds a connection it dialled to p and
// p is neither admitted nor was tried within introRetry; a full queue
// drops it. Call it when p joins the members topic.
func (in *Introducer) Introduce(p peer.ID) {
	if p == in.cfg.Host.ID() || in.cfg.Admission.Verified(p) || !dialled(in.cfg.Host, p) {
		return
	}
	select {
	case in.queue <- p:
	default:
	}
}

func (in *Introducer) work(ctx context.Context) {
	defer in.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-in.queue:
			if in.cfg.Admission.Verified(p) || !in.due(p) {
				continue
			}
			if err := in.introduce(ctx, p); err != nil {
				in.cfg.Logger.Debug("introduction failed", "peer", p, "err", err)
			}
		}
	}
}

// due reports whether p may be tried now, and records the attempt.
func (in *Introducer) due(p peer.ID) bool {
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	if t, ok := in.tried[p]; ok && now.Sub(t) < introRetry {
		return false
	}
	if len(in.tried) >= maxIntroduced {
		for k, t := range in.tried { // stale ones, else an eighth
			if now.Sub(t) >= introRetry || len(in.tried) > maxIntroduced-maxIntroduced/8 {
				delete(in.tried, k)
			}
		}
	}
	in.tried[p] = now
	return true
}

// introduce shows p this node's certificate and admits p if its answer
// verifies.
func (in *Introducer) introduce(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, introTimeout)
	defer cancel()
	s, err := in.cfg.Host.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-introduce"), p, introProtocol(in.cfg.Spec.ID))
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(introTimeout))
	if err := json.NewEncoder(s).Encode(in.cfg.Cert()); err != nil {
		return err
	}
	_ = s.CloseWrite()
	c, err := in.readCert(s, p)
	if err != nil {
		return err
	}
	in.cfg.Admission.admit(p, c, in.cfg.Revoked)
	return nil
}

// serve answers an introduction: the asker's certificate first.
func (in *Introducer) serve(s network.Stream) {
	p := s.Conn().RemotePeer()
	_ = s.SetDeadline(time.Now().Add(introTimeout))
	c, err := in.readCert(s, p)
	if err != nil {
		in.cfg.Logger.Debug("introduction refused", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	in.cfg.Admission.admit(p, c, in.cfg.Revoked)
	defer s.Close()
	_ = json.NewEncoder(s).Encode(in.cfg.Cert())
}

// readCert reads and verifies p's certificate from r.
func (in *Introducer) readCert(r io.Reader, p peer.ID) (*cladnet.Certificate, error) {
	var c cladnet.Certificate
	if err := json.NewDecoder(io.LimitReader(r, maxCertBytes)).Decode(&c); err != nil {
		return nil, err
	}
	if err := c.Verify(in.cfg.Spec, p, time.Now()); err != nil {
		return nil, err
	}
	if in.cfg.Revoked != nil && in.cfg.Revoked(&c) {
		return nil, errors.New("certificate revoked")
	}
	return &c, nil
}

// dialled reports whether h holds an outbound connection to p.
func dialled(h host.Host, p peer.ID) bool {
	for _, c := range h.Network().ConnsToPeer(p) {
		if c.Stat().Direction == network.DirOutbound {
			return true
		}
	}
	return false
}

// Close stops introducing and serving, and waits for the workers.
func (in *Introducer) Close() {
	in.cfg.Host.RemoveStreamHandler(introProtocol(in.cfg.Spec.ID))
	in.cancel()
	in.wg.Wait()
}
