package overlay

import (
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// gossipTopic is a joined, subscribed and watched gossipsub topic.
type gossipTopic struct {
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	evts  *pubsub.TopicEventHandler
}

// joinTopic registers validate for name, then joins, subscribes and watches
// peer events; on failure it undoes what it did.
func joinTopic(ps *pubsub.PubSub, name string, validate pubsub.ValidatorEx) (*gossipTopic, error) {
	if err := ps.RegisterTopicValidator(name, validate); err != nil {
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
	return &gossipTopic{topic: topic, sub: sub, evts: evts}, nil
}
