package cost_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

// The rule type names must match cladnet's.
func TestRuleTypesMatchCladnet(t *testing.T) {
	if cost.RuleBasic != cladnet.RuleBasic || cost.RuleCostPrioritized != cladnet.RuleCostPrioritized {
		t.Fatalf("rule types differ: cost %q/%q, cladnet %q/%q",
			cost.RuleBasic, cost.RuleCostPrioritized, cladnet.RuleBasic, cladnet.RuleCostPrioritized)
	}
}

// Rules signed with a CLADNet's owner key verify against its spec.
func TestRulesWithSpec(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := cladnet.NewSpec("lab", "", cladnet.RuleCostPrioritized, "", pub, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := cost.LoadRulesFile([]byte(`{"ruleType":"cost-prioritized"}`), spec.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cost.SignRules(priv, r); err != nil {
		t.Fatal(err)
	}
	owner, err := spec.OwnerPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(spec.ID, owner); err != nil {
		t.Fatalf("Verify against the spec: %v", err)
	}
	if !cost.Newer(r, cost.DefaultRules(spec.ID, spec.RuleType)) {
		t.Error("signed rules should supersede the built-in ones")
	}
}
