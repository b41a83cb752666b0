package cost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Rule types. They are the same strings as cladnet.RuleBasic and
// cladnet.RuleCostPrioritized (cost does not import cladnet so that cladnet
// may one day import cost; a test keeps the two in step).
const (
	// RuleBasic always uses the peers' public addresses.
	RuleBasic = "basic"
	// RuleCostPrioritized uses a peer's private address wherever the two
	// nodes share a network and the private path costs no more.
	RuleCostPrioritized = "cost-prioritized"
)

// MaxRulesSize bounds a rules document (and a rules file) in bytes.
const MaxRulesSize = 64 << 10

// Rules is a CLADNet's routing and price rules, signed by the CLADNet owner
// key and gossiped to the members. Version 0 is reserved for the built-in
// rules (DefaultRules), which are unsigned and superseded by any signed
// document; see Newer for which of two documents wins.
type Rules struct {
	CladnetID string     `json:"cladnetId"`
	Version   uint64     `json:"version"`
	RuleType  string     `json:"ruleType"`
	Prices    PriceTable `json:"prices"`
	IssuedAt  time.Time  `json:"issuedAt"`
	// Filter is the packet filter (nil: every member accepts every packet
	// from every member). Omitted when nil, so documents signed before it
	// existed keep verifying.
	Filter *FilterPolicy `json:"filter,omitempty"`
	// Signature is the owner's base64 Ed25519 signature over the other
	// fields (see SignRules).
	Signature string `json:"signature,omitempty"`
}

// DefaultRules returns the built-in rules for a CLADNet: version 0,
// unsigned, with DefaultPrices. An empty rule type means basic.
func DefaultRules(cladnetID, ruleType string) *Rules {
	if ruleType == "" {
		ruleType = RuleBasic
	}
	return &Rules{
		CladnetID: cladnetID,
		RuleType:  ruleType,
		Prices:    DefaultPrices(),
	}
}

// ValidRuleType reports whether t is basic or cost-prioritized.
func ValidRuleType(t string) bool {
	return t == RuleBasic || t == RuleCostPrioritized
}

// Validate checks a signable document: CLADNet ID set, version > 0, rule
// type known and a valid price table. It does not check the signature.
func (r *Rules) Validate() error {
	if r == nil {
		return errors.New("rules: missing")
	}
	if r.CladnetID == "" {
		return errors.New("rules: empty cladnetId")
	}
	if len(r.CladnetID) > 256 {
		return fmt.Errorf("rules: cladnetId has %d bytes, at most 256", len(r.CladnetID))
	}
	if r.Version == 0 {
		return errors.New("rules: version must be greater than 0 (0 is the built-in rules)")
	}
	if !ValidRuleType(r.RuleType) {
		return fmt.Errorf("rules: rule type %q: want %q or %q", r.RuleType, RuleBasic, RuleCostPrioritized)
	}
	if err := r.Prices.Validate(); err != nil {
		return fmt.Errorf("rules %s v%d: %w", r.CladnetID, r.Version, err)
	}
	if err := r.Filter.Validate(); err != nil {
		return fmt.Errorf("rules %s v%d: %w", r.CladnetID, r.Version, err)
	}
	return nil
}

// ParseRules decodes a rules document (as gossiped or stored) and validates
// it. It does not verify the signature: call Verify with the CLADNet's ID and
// owner key before trusting the result. Unknown JSON fields are ignored so
// older nodes can read documents from newer ones.
func ParseRules(data []byte) (*Rules, error) {
	if len(data) > MaxRulesSize {
		return nil, fmt.Errorf("rules: document has %d bytes, at most %d", len(data), MaxRulesSize)
	}
	var r Rules
	if err := decodeOne(data, &r, false); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// decodeOne decodes exactly one JSON value from data into v.
func decodeOne(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON: trailing data after the document")
	}
	return nil
}

// Newer reports whether a supersedes b: a higher version wins; on equal
// versions the later IssuedAt wins, then the greater signature, so every
// node picks the same document. A nil document never wins and loses to any
// non-nil one. Newer does not verify signatures; verify first.
func Newer(a, b *Rules) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	case a.Version != b.Version:
		return a.Version > b.Version
	case !a.IssuedAt.Equal(b.IssuedAt):
		return a.IssuedAt.After(b.IssuedAt)
	default:
		return a.Signature > b.Signature
	}
}

// Clone returns a deep copy of r.
func (r *Rules) Clone() *Rules {
	if r == nil {
		return nil
	}
	c := *r
	c.Prices = r.Prices.Clone()
	c.Filter = r.Filter.Clone()
	return &c
}

// Marshal encodes the rules as JSON (signed documents travel like this).
func (r *Rules) Marshal() ([]byte, error) { return json.Marshal(r) }
