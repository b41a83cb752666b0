package overlay

import (
	"context"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// gossipTopic is a joined, subscribed and watched gossipsub topic.
type gossipTopic struct {
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	evts  *pubsub.TopicEventHandler
	rate  *originLimiter // per-origin message budget (see ratelimit.go)
}

// joinTopic registers validate for name (behind a per-origin message
// budget), then joins, subscribes and watches peer events; on failure it
// undoes what it did.
func joinTopic(ps *pubsub.PubSub, name string, validate pubsub.ValidatorEx) (*gossipTopic, error) {
	rate := newOriginLimiter()
	limited := func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if !msg.Local && !rate.allow(msg.GetFrom()) {
			return pubsub.ValidationIgnore
		}
		return validate(ctx, from, msg)
	}
	if err := ps.RegisterTopicValidator(name, pubsub.ValidatorEx(limited)); err != nil {
		return nil, fmt.Errorf("topic %s: validator: %w", name, err)
	}
	fail := func(what string, err error) (*gossipTopic, error) {
		_ = ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("topic %s: %s: %w", name, what, err)
	}
	topic, err := ps.Join(name)
	if err != nil {
		return fail("join", err)
	}
	// Invalid messages cost the sender score (where scoring is on: see
	// Admission); without scoring this fails harmlessly.
	_ = topic.SetScoreParams(TopicScoreParams())
	sub, err := topic.Subscribe()
	if err != nil {
		topic.Close()
		return fail("subscribe", err)
	}
	evts, err := topic.EventHandler()
	if err != nil {
		sub.Cancel()
		topic.Close()
		return fail("events", err)
	}
	return &gossipTopic{topic: topic, sub: sub, evts: evts, rate: rate}, nil
}
