package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/node"
)

// RulesFile is where a member keeps the newest rules it applied.
const RulesFile = "rules.json"

// Rules spreads the CLADNet's signed cost rules by gossip: members apply the
// newest version signed by the owner key and ignore unsigned, foreign or
// older documents; the current version is re-published when a member joins
// the topic, so newcomers get it at once, and kept in the state directory.
type Rules struct {
	*signedTopic[cost.Rules]
	watch chan struct{}
}

// RulesTopic is the gossipsub topic of a CLADNet's rules.
func RulesTopic(cladnetID string) string { return "/cbnode/cladnet/" + cladnetID + "/rules" }

// StartRules joins the rules topic; stateDir keeps the newest rules.
func StartRules(ctx context.Context, spec *cladnet.Spec, n *node.Node, stateDir string, log *slog.Logger) (*Rules, error) {
	r := newRules(spec, stateDir, log)
	if err := r.start(ctx, n, RulesTopic(spec.ID)); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return r, nil
}

// newRules loads the saved rules (the CLADNet's defaults if there are
// none); it does not touch the network.
func newRules(spec *cladnet.Spec, stateDir string, log *slog.Logger) *Rules {
	kind := signedDoc[cost.Rules]{
		file: RulesFile,
		verify: func(b []byte) (*cost.Rules, error) {
			doc, err := cost.ParseRules(b)
			if err != nil {
				return nil, err
			}
			pub, err := spec.OwnerPublicKey()
			if err != nil {
				return nil, err
			}
			if err := doc.Verify(spec.ID, pub); err != nil {
				return nil, err
			}
			return doc, nil
		},
		newer:   cost.Newer,
		marshal: (*cost.Rules).Marshal,
		// The defaults are unsigned: nothing to tell a newcomer.
		publishable: func(doc *cost.Rules) bool { return doc.Signature != "" },
		stale: func(doc, cur *cost.Rules) error {
			return fmt.Errorf("%w (version %d, current %d)", ErrStaleRules, doc.Version, cur.Version)
		},
		noun: "rules", rejected: "rejected rules document", applied: "applied cost rules",
		appliedAttrs: func(doc *cost.Rules) []any { return []any{"version", doc.Version, "ruleType", doc.RuleType} },
	}
	r := &Rules{signedTopic: newSignedTopic(kind, stateDir, cost.DefaultRules(spec.ID, spec.RuleType), log)}
	r.watch = r.changes()
	return r
}

// ErrStaleRules is returned by Submit for a document not newer than the
// current rules.
var ErrStaleRules = errors.New("rules document is not newer than the current rules")

// Submit verifies a signed rules document, applies it and gossips it.
func (r *Rules) Submit(ctx context.Context, b []byte) (*cost.Rules, error) {
	return r.submitSigned(ctx, b)
}

// Current returns the rules in force.
func (r *Rules) Current() *cost.Rules { return r.current() }

// Changes signals (coalesced) when new rules were applied.
func (r *Rules) Changes() <-chan struct{} { return r.watch }

// Close leaves the topic.
func (r *Rules) Close() { r.close() }
