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
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
	"github.com/cloud-barista/cbnode/node"
)

// RulesFile is where a member keeps the newest rules it applied.
const RulesFile = "rules.json"

// Rules spreads the CLADNet's signed cost rules by gossip: members apply the
// newest version signed by the owner key and ignore unsigned, foreign or
// older documents; the current version is re-published when a member joins
// the topic, so newcomers get it at once, and kept in the state directory.
type Rules struct {
	spec  *cladnet.Spec
	node  *node.Node
	path  string
	log   *slog.Logger
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	mu      sync.Mutex
	current *cost.Rules
	watch   chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// RulesTopic is the gossipsub topic of a CLADNet's rules.
func RulesTopic(cladnetID string) string { return "/cbnode/cladnet/" + cladnetID + "/rules" }

// StartRules joins the rules topic; stateDir keeps the newest rules.
func StartRules(ctx context.Context, spec *cladnet.Spec, n *node.Node, stateDir string, log *slog.Logger) (*Rules, error) {
	r := &Rules{spec: spec, node: n, path: filepath.Join(stateDir, RulesFile), log: log,
		current: cost.DefaultRules(spec.ID, spec.RuleType), watch: make(chan struct{}, 1)}
	if b, err := os.ReadFile(r.path); err == nil {
		if saved, err := r.verify(b); err == nil {
			r.current = saved
		} else {
			log.Warn("ignoring saved rules", "file", r.path, "err", err)
		}
	}
	gt, err := joinTopic(n.PubSub, RulesTopic(spec.ID), r.validate)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	r.topic, r.sub = gt.topic, gt.sub
	evts := gt.evts
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(2)
	go r.receive(ctx)
	go r.republishOnJoin(ctx, evts)
	return r, nil
}

func (r *Rules) verify(b []byte) (*cost.Rules, error) {
	doc, err := cost.ParseRules(b)
	if err != nil {
		return nil, err
	}
	pub, err := r.spec.OwnerPublicKey()
	if err != nil {
		return nil, err
	}
	if err := doc.Verify(r.spec.ID, pub); err != nil {
		return nil, err
	}
	return doc, nil
}

func (r *Rules) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	local := r.node != nil && from == r.node.Host.ID() // Submit, or the re-publication to a newcomer
	doc, err := r.verify(msg.Data)
	if err != nil {
		r.log.Warn("rejected rules document", "from", msg.GetFrom(), "err", err)
		return pubsub.ValidationReject
	}
	// A genuinely signed but older (or the same) version is a replay, or
	// the re-publication to a newcomer reaching members that hold it:
	// ignore it (no penalty) and do not spread it.
	if !local && !cost.Newer(doc, r.Current()) {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = doc
	return pubsub.ValidationAccept
}

func (r *Rules) receive(ctx context.Context) {
	defer r.wg.Done()
	for {
		msg, err := r.sub.Next(ctx)
		if err != nil {
			return
		}
		if doc, ok := msg.ValidatorData.(*cost.Rules); ok {
			r.apply(doc)
		}
	}
}

// apply installs doc if it is newer than the current rules.
func (r *Rules) apply(doc *cost.Rules) bool {
	r.mu.Lock()
	if !cost.Newer(doc, r.current) {
		r.mu.Unlock()
		return false
	}
	r.current = doc
	r.mu.Unlock()
	if b, err := doc.Marshal(); err == nil {
		if err := atomicfile.Write(r.path, b, 0o600); err != nil {
			r.log.Warn("save rules", "err", err)
		}
	}
	r.log.Info("applied cost rules", "version", doc.Version, "ruleType", doc.RuleType)
	select {
	case r.watch <- struct{}{}:
	default:
	}
	return true
}

// republishOnJoin sends the current signed rules to newcomers.
func (r *Rules) republishOnJoin(ctx context.Context, evts *pubsub.TopicEventHandler) {
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
		if doc := r.Current(); doc.Signature != "" {
			if err := r.publish(ctx, doc); err != nil && ctx.Err() == nil {
				r.log.Debug("republish rules", "err", err)
			}
		}
	}
}

func (r *Rules) publish(ctx context.Context, doc *cost.Rules) error {
	b, err := doc.Marshal()
	if err != nil {
		return err
	}
	return r.topic.Publish(ctx, b)
}

// ErrStaleRules is returned by Submit for a document not newer than the
// current rules.
var ErrStaleRules = errors.New("rules document is not newer than the current rules")

// Submit verifies a signed rules document, applies it and gossips it.
func (r *Rules) Submit(ctx context.Context, b []byte) (*cost.Rules, error) {
	doc, err := r.verify(b)
	if err != nil {
		return nil, err
	}
	if !r.apply(doc) {
		return nil, fmt.Errorf("%w (version %d, current %d)", ErrStaleRules, doc.Version, r.Current().Version)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.publish(pctx, doc); err != nil {
		return doc, fmt.Errorf("applied here, but gossip failed: %w", err)
	}
	return doc, nil
}

// Current returns the rules in force.
func (r *Rules) Current() *cost.Rules {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// Changes signals (coalesced) when new rules were applied.
func (r *Rules) Changes() <-chan struct{} { return r.watch }

// Close leaves the topic.
func (r *Rules) Close() {
	r.cancel()
	r.sub.Cancel()
	r.wg.Wait()
	r.topic.Close()
	_ = r.node.PubSub.UnregisterTopicValidator(r.topic.String())
}
