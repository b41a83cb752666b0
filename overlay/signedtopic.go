package overlay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
	"github.com/cloud-barista/cbnode/node"
)

// submitTimeout bounds the gossip of a submitted document.
const submitTimeout = 5 * time.Second

// Re-publication to newcomers: at most once per RepublishEvery however
// often peers join (or toggle their subscription), and only for a peer
// whose certificate this node verified; a joiner not yet verified is
// remembered (at most maxPendingJoins, for pendingJoinTTL) in case its
// announcement arrives after its subscription.
const (
	RepublishEvery  = 5 * time.Second
	maxPendingJoins = 256
	pendingJoinTTL  = time.Minute
	// maxWarned bounds the peers whose first rejected document is logged
	// at WARN; later rejections are counted and logged at DEBUG.
	maxWarned = 1024
)

// signedDoc describes one kind of owner-signed, versioned document that a
// signedTopic spreads: Rules, Revocations and Control fill it in.
type signedDoc[D any] struct {
	// file is the document's file name in the state directory.
	file string
	// verify decodes b and checks the owner's signature.
	verify func(b []byte) (*D, error)
	// newer reports whether doc supersedes cur (nil: none held).
	newer func(doc, cur *D) bool
	// marshal encodes a document for the wire and the file.
	marshal func(*D) ([]byte, error)
	// publishable, if set, reports whether the held document is worth
	// re-publishing to a newcomer; without it, any non-nil one is.
	publishable func(*D) bool
	// stale is Submit's error for doc, not newer than cur.
	stale func(doc, cur *D) error

	// Log wording: noun names the document ("ignoring saved "+noun, "save
	// "+noun, "republish "+noun); rejected and applied are whole messages,
	// appliedAttrs the attributes of the latter.
	noun, rejected, applied string
	appliedAttrs            func(*D) []any
}

// signedTopic spreads an owner-signed, versioned document on its own
// gossipsub topic: the validator passes only verified documents newer than
// the one held (older or equal ones — replays, or the re-publication to a
// newcomer reaching members that hold it — are ignored, not penalized; the
// node's own publications pass; a sender's first rejection is logged, the
// rest counted), the newest is kept in the state directory, watchers are
// told of every change, and the document in force is re-published when a
// verified peer joins the topic, so newcomers learn it at once — at most
// once per RepublishEvery (see SetAdmission).
type signedTopic[D any] struct {
	signedDoc[D]
	node  *node.Node
	path  string
	log   *slog.Logger
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	rate  *originLimiter

	mu      sync.Mutex
	doc     *D // the document in force
	watchMu sync.Mutex
	watch   []chan struct{}

	admitted    atomic.Pointer[Admission] // nil: every joiner counts
	rejects     atomic.Uint64             // documents the validator rejected
	republishes atomic.Uint64             // re-publications to newcomers
	warnMu      sync.Mutex
	warned      map[peer.ID]struct{} // senders whose rejection was logged at WARN

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newSignedTopic loads the document saved in stateDir (initial if there is
// none or it does not verify; an empty stateDir keeps documents in memory
// only); it does not touch the network.
func newSignedTopic[D any](kind signedDoc[D], stateDir string, initial *D, log *slog.Logger) *signedTopic[D] {
	if log == nil {
		log = slog.Default()
	}
	s := &signedTopic[D]{signedDoc: kind, log: log, doc: initial}
	if stateDir == "" {
		return s // kept in memory only
	}
	s.path = filepath.Join(stateDir, kind.file)
	if b, err := os.ReadFile(s.path); err == nil {
		if saved, err := s.verify(b); err == nil {
			s.doc = saved
		} else {
			log.Warn("ignoring saved "+s.noun, "file", s.path, "err", err)
		}
	}
	return s
}

// start joins topic on n and runs the receive and re-publish loops until
// close.
func (s *signedTopic[D]) start(ctx context.Context, n *node.Node, topic string) error {
	s.node = n
	gt, err := joinTopic(n.PubSub, topic, s.validate)
	if err != nil {
		return err
	}
	s.topic, s.sub, s.rate = gt.topic, gt.sub, gt.rate
	ctx, s.cancel = context.WithCancel(ctx)
	joins := make(chan peer.ID, 64)
	s.wg.Add(3)
	go s.receive(ctx)
	go s.readJoins(ctx, gt.evts, joins)
	go s.republishOnJoin(ctx, joins)
	return nil
}

// SetAdmission makes re-publication to newcomers wait until the joiner's
// certificate is verified (an outsider toggling its subscription gets
// nothing and costs nothing).
func (s *signedTopic[D]) SetAdmission(a *Admission) { s.admitted.Store(a) }

// Rejected is how many documents failed verification.
func (s *signedTopic[D]) Rejected() uint64 { return s.rejects.Load() }

// RateLimited is how many messages exceeded their origin's budget
// (MsgRate, MsgBurst) and were dropped unvalidated.
func (s *signedTopic[D]) RateLimited() uint64 { return s.rate.limited.Load() }

// Republished is how many times the document was re-published to newcomers.
func (s *signedTopic[D]) Republished() uint64 { return s.republishes.Load() }

func (s *signedTopic[D]) verifiedPeer(p peer.ID) bool {
	a := s.admitted.Load()
	return a == nil || a.Verified(p)
}

// logRejected logs the first rejection of each sender at WARN (of at
// most maxWarned senders) and the rest at DEBUG.
func (s *signedTopic[D]) logRejected(from peer.ID, err error) {
	s.warnMu.Lock()
	_, seen := s.warned[from]
	if !seen && len(s.warned) < maxWarned {
		if s.warned == nil {
			s.warned = map[peer.ID]struct{}{}
		}
		s.warned[from] = struct{}{}
	} else {
		seen = true
	}
	s.warnMu.Unlock()
	if seen {
		s.log.Debug(s.rejected, "from", from, "err", err, "rejectedTotal", s.rejects.Load())
		return
	}
	s.log.Warn(s.rejected, "from", from, "err", err, "note", "further rejections from this peer are counted, logged at DEBUG")
}

// validate rejects documents that do not verify (the sender is penalized)
// and ignores, without spreading them, ones not newer than the one held.
func (s *signedTopic[D]) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := s.node != nil && from == s.node.Host.ID() // Submit, or the re-publication to a newcomer
	doc, err := s.verify(msg.Data)
	if err != nil {
		s.rejects.Add(1)
		s.logRejected(msg.GetFrom(), err)
		return pubsub.ValidationReject
	}
	if !local && !s.newer(doc, s.current()) {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = doc
	return pubsub.ValidationAccept
}

func (s *signedTopic[D]) receive(ctx context.Context) {
	defer s.wg.Done()
	for {
		msg, err := s.sub.Next(ctx)
		if err != nil {
			return
		}
		if doc, ok := msg.ValidatorData.(*D); ok {
			s.apply(doc)
		}
	}
}

// apply installs doc if it is newer than the document in force, saves it
// and signals the watchers. The file is written before the document is in
// force, so whoever sees it in force finds it saved too.
func (s *signedTopic[D]) apply(doc *D) bool {
	s.mu.Lock()
	if !s.newer(doc, s.doc) {
		s.mu.Unlock()
		return false
	}
	if b, err := s.marshal(doc); err == nil && s.path != "" {
		if err := atomicfile.Write(s.path, b, 0o600); err != nil {
			s.log.Warn("save "+s.noun, "err", err)
		}
	}
	s.doc = doc
	s.mu.Unlock()
	s.log.Info(s.applied, s.appliedAttrs(doc)...)
	s.watchMu.Lock()
	for _, ch := range s.watch {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.watchMu.Unlock()
	return true
}

// readJoins passes the peers joining the topic to republishOnJoin; when
// it lags, joins are dropped (re-publication is rate-limited anyway).
func (s *signedTopic[D]) readJoins(ctx context.Context, evts *pubsub.TopicEventHandler, joins chan<- peer.ID) {
	defer s.wg.Done()
	defer evts.Cancel()
	for {
		ev, err := evts.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		select {
		case joins <- ev.Peer:
		default:
		}
	}
}

// republishOnJoin sends the document in force when a verified peer joined
// the topic (or a peer that joined was verified since), at most once per
// RepublishEvery.
func (s *signedTopic[D]) republishOnJoin(ctx context.Context, joins <-chan peer.ID) {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	pending := map[peer.ID]time.Time{}
	var last time.Time
	due := false
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-joins:
			if s.verifiedPeer(p) {
				due = true
			} else if len(pending) < maxPendingJoins {
				pending[p] = time.Now()
			}
		case now := <-tick.C:
			for p, t := range pending {
				switch {
				case s.verifiedPeer(p):
					due = true
					delete(pending, p)
				case now.Sub(t) > pendingJoinTTL:
					delete(pending, p)
				}
			}
		}
		if !due || time.Since(last) < RepublishEvery {
			continue
		}
		due, last = false, time.Now()
		if doc := s.current(); doc != nil && (s.publishable == nil || s.publishable(doc)) {
			s.republishes.Add(1)
			if err := s.publish(ctx, doc); err != nil && ctx.Err() == nil {
				s.log.Debug("republish "+s.noun, "err", err)
			}
		}
	}
}

func (s *signedTopic[D]) publish(ctx context.Context, doc *D) error {
	b, err := s.marshal(doc)
	if err != nil {
		return err
	}
	return s.topic.Publish(ctx, b)
}

// submitSigned verifies the document b, applies it and gossips it.
func (s *signedTopic[D]) submitSigned(ctx context.Context, b []byte) (*D, error) {
	doc, err := s.verify(b)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, doc)
}

// submit applies doc, verified by the caller, and gossips it. A returned
// document with an error was applied here but not gossiped.
func (s *signedTopic[D]) submit(ctx context.Context, doc *D) (*D, error) {
	if !s.apply(doc) {
		return nil, s.stale(doc, s.current())
	}
	pctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	if err := s.publish(pctx, doc); err != nil {
		return doc, fmt.Errorf("applied here, but gossip failed: %w", err)
	}
	return doc, nil
}

// current returns the document in force.
func (s *signedTopic[D]) current() *D {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doc
}

// changes returns a new channel signalled (coalesced) when a document was
// applied.
func (s *signedTopic[D]) changes() chan struct{} {
	ch := make(chan struct{}, 1)
	s.watchMu.Lock()
	s.watch = append(s.watch, ch)
	s.watchMu.Unlock()
	return ch
}

// close leaves the topic and waits for the loops.
func (s *signedTopic[D]) close() {
	s.cancel()
	s.sub.Cancel()
	s.wg.Wait()
	s.topic.Close()
	_ = s.node.PubSub.UnregisterTopicValidator(s.topic.String())
}
