package cost

import (
	"errors"
	"fmt"
	"time"
)

// RulesFile is the document an operator writes for
// `cbnode cladnet rules NAME --file rules.json`:
//
//	{
//	  "ruleType": "cost-prioritized",
//	  "prices": {
//	    "default":   {"internet": 0.09},
//	    "providers": {"aws": {"cross-zone": 0.02, "internet": 0.05}}
//	  },
//	  "version": 7
//	}
//
// ruleType is required. prices is optional and holds only overrides: they
// are laid over DefaultPrices. version is optional; when absent it is the
// current Unix time in seconds, so a later file supersedes an earlier one.
type RulesFile struct {
	RuleType string     `json:"ruleType"`
	Prices   PriceTable `json:"prices"`
	Version  uint64     `json:"version,omitempty"`
	// Filter is the packet filter (see FilterPolicy); absent = allow all.
	Filter *FilterPolicy `json:"filter,omitempty"`
}

// LoadRulesFile reads an operator's rules file and returns unsigned rules
// for the CLADNet cladnetID, ready for SignRules: the file's rule type, its
// price overrides merged onto DefaultPrices, its version (now's Unix seconds
// if absent) and IssuedAt = now. Unknown fields are rejected, to catch typos.
func LoadRulesFile(data []byte, cladnetID string, now time.Time) (*Rules, error) {
	if len(data) > MaxRulesSize {
		return nil, fmt.Errorf("rules file: %d bytes, at most %d", len(data), MaxRulesSize)
	}
	var f RulesFile
	if err := decodeOne(data, &f, true); err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	if f.RuleType == "" {
		return nil, errors.New(`rules file: "ruleType" is required ("basic" or "cost-prioritized")`)
	}
	if !ValidRuleType(f.RuleType) {
		return nil, fmt.Errorf("rules file: rule type %q: want %q or %q", f.RuleType, RuleBasic, RuleCostPrioritized)
	}
	version := f.Version
	if version == 0 {
		if now.Unix() <= 0 {
			return nil, fmt.Errorf("rules file: no version given and the clock (%s) cannot supply one", now.UTC().Format(time.RFC3339))
		}
		version = uint64(now.Unix())
	}
	r := &Rules{
		CladnetID: cladnetID,
		Version:   version,
		RuleType:  f.RuleType,
		Prices:    DefaultPrices().Merge(f.Prices),
		IssuedAt:  now.UTC().Truncate(time.Second),
		Filter:    f.Filter,
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	return r, nil
}
