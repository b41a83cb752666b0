package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
	"github.com/cloud-barista/cbnode/node"
)

// Revocations spreads the CLADNet's owner-signed revocation list by gossip,
// the way Rules spreads the cost rules: members keep the newest version
// signed by the owner key (in the state directory, cladnet.RevocationsFile),
// ignore older or equal versions (a replayed old list cannot un-revoke a
// node), and re-publish it when a peer joins the topic, so newcomers learn
// it at once.
type Revocations struct {
	spec  *cladnet.Spec
	node  *node.Node
	path  string
	log   *slog.Logger
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	mu      sync.Mutex
	current *cladnet.Revocations // nil: nothing revoked
	watchMu sync.Mutex
	watch   []chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// RevocationsTopic is the gossipsub topic of a CLADNet's revocation list.
func RevocationsTopic(cladnetID string) string {
	return "/cbnode/cladnet/" + cladnetID + "/revocations"
}

// StartRevocations joins the revocations topic; stateDir keeps the newest list.
func StartRevocations(ctx context.Context, spec *cladnet.Spec, n *node.Node, stateDir string, log *slog.Logger) (*Revocations, error) {
	r := newRevocations(spec, stateDir, log)
	r.node = n
	gt, err := joinTopic(n.PubSub, RevocationsTopic(spec.ID), r.validate)
	if err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	r.topic, r.sub = gt.topic, gt.sub
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(2)
	go r.receive(ctx)
	go r.republishOnJoin(ctx, gt.evts)
	return r, nil
}

// newRevocations loads the saved list; it does not touch the network.
func newRevocations(spec *cladnet.Spec, stateDir string, log *slog.Logger) *Revocations {
	if log == nil {
		log = slog.Default()
	}
	r := &Revocations{spec: spec, path: filepath.Join(stateDir, cladnet.RevocationsFile), log: log}
	if b, err := os.ReadFile(r.path); err == nil {
		if saved, err := r.verify(b); err == nil {
			r.current = saved
		} else {
			log.Warn("ignoring saved revocation list", "file", r.path, "err", err)
		}
	}
	return r
}

func (r *Revocations) verify(b []byte) (*cladnet.Revocations, error) {
	doc, err := cladnet.ParseRevocations(b)
	if err != nil {
		return nil, err
	}
	if err := doc.Verify(r.spec); err != nil {
		return nil, err
	}
	return doc, nil
}

// validate admits only owner-signed lists newer than the one held: forged
// lists are rejected (the sender is penalized), old or equal versions —
// replays, or the re-publication to a newcomer reaching old members — are
// ignored and not spread further.
func (r *Revocations) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := r.node != nil && from == r.node.Host.ID() // Submit, or the re-publication to a newcomer
	doc, err := r.verify(msg.Data)
	if err != nil {
		r.log.Warn("rejected revocation list", "from", msg.GetFrom(), "err", err)
		return pubsub.ValidationReject
	}
	if !local && !cladnet.NewerRevocations(doc, r.Current()) {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = doc
	return pubsub.ValidationAccept
}

func (r *Revocations) receive(ctx context.Context) {
	defer r.wg.Done()
	for {
		msg, err := r.sub.Next(ctx)
		if err != nil {
			return
		}
		if doc, ok := msg.ValidatorData.(*cladnet.Revocations); ok {
			r.apply(doc)
		}
	}
}

// apply installs doc if it is newer than the current list.
func (r *Revocations) apply(doc *cladnet.Revocations) bool {
	r.mu.Lock()
	if !cladnet.NewerRevocations(doc, r.current) {
		r.mu.Unlock()
		return false
	}
	r.current = doc
	r.mu.Unlock()
	if b, err := doc.Marshal(); err == nil {
		if err := atomicfile.Write(r.path, b, 0o600); err != nil {
			r.log.Warn("save revocation list", "err", err)
		}
	}
	r.log.Info("applied revocation list", "version", doc.Version, "revoked", len(doc.Entries))
	r.watchMu.Lock()
	for _, ch := range r.watch {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	r.watchMu.Unlock()
	return true
}

func (r *Revocations) republishOnJoin(ctx context.Context, evts *pubsub.TopicEventHandler) {
	defer r.wg.Done()
	defer evts.Cancel()
	for {
		ev, err := evts.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		if doc := r.Current(); doc != nil {
			if err := r.publish(ctx, doc); err != nil && ctx.Err() == nil {
				r.log.Debug("republish revocation list", "err", err)
			}
		}
	}
}

func (r *Revocations) publish(ctx context.Context, doc *cladnet.Revocations) error {
	b, err := doc.Marshal()
	if err != nil {
		return err
	}
	return r.topic.Publish(ctx, b)
}

// ErrStaleRevocations is returned by Submit for a list not newer than the
// current one.
var ErrStaleRevocations = errors.New("revocation list is not newer than the current one")

// Submit verifies a signed revocation list, applies it and gossips it.
func (r *Revocations) Submit(ctx context.Context, b []byte) (*cladnet.Revocations, error) {
	doc, err := r.verify(b)
	if err != nil {
		return nil, err
	}
	if !r.apply(doc) {
		var cur uint64
		if c := r.Current(); c != nil {
			cur = c.Version
		}
		return nil, fmt.Errorf("%w (version %d, current %d): revoke again with 'cbnode cladnet revoke' to get a newer version", ErrStaleRevocations, doc.Version, cur)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.publish(pctx, doc); err != nil {
		return doc, fmt.Errorf("applied here, but gossip failed: %w", err)
	}
	return doc, nil
}

// Current returns the list in force, nil when nothing is revoked.
func (r *Revocations) Current() *cladnet.Revocations {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// RevokedPeer reports whether the list in force revokes node p.
func (r *Revocations) RevokedPeer(p peer.ID) bool { return r.Current().RevokedPeer(p) }

// RevokedCert reports whether the list in force revokes certificate c (its
// peer or its fingerprint).
func (r *Revocations) RevokedCert(c *cladnet.Certificate) bool { return r.Current().RevokedCert(c) }

// Changes returns a channel signalled (coalesced) when a new list was
// applied. Each call returns a new channel.
func (r *Revocations) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	r.watchMu.Lock()
	r.watch = append(r.watch, ch)
	r.watchMu.Unlock()
	return ch
}

// Close leaves the topic.
func (r *Revocations) Close() {
	r.cancel()
	r.sub.Cancel()
	r.wg.Wait()
	r.topic.Close()
	_ = r.node.PubSub.UnregisterTopicValidator(r.topic.String())
}
