package cost

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

func TestLoadRulesFile(t *testing.T) {
	r, err := LoadRulesFile([]byte(`{"ruleType":"cost-prioritized"}`), "cn", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.RuleType != RuleCostPrioritized || r.Version != uint64(t0.Unix()) || r.CladnetID != "cn" || !r.IssuedAt.Equal(t0) || r.Signature != "" {
		t.Errorf("minimal file: %+v", r)
	}
	if r.Prices.Price("aws", ClassCrossZone) != 0.02 || r.Prices.Price("", ClassInternet) != 0.09 {
		t.Errorf("defaults not applied: %+v", r.Prices)
	}

	r, err = LoadRulesFile([]byte(`{
		"ruleType": "basic",
		"version": 7,
		"prices": {
			"default":   {"internet": 0.1},
			"providers": {"AWS": {"internet": 0.05}, "ibm": {"cross-zone": 0}}
		}
	}`), "cn", t0)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		provider string
		class    Class
		want     float64
	}{
		{"", ClassInternet, 0.1},         // default override
		{"", ClassCrossZone, 0.01},       // default kept
		{"aws", ClassInternet, 0.05},     // provider override
		{"aws", ClassCrossZone, 0.02},    // provider default kept
		{"ibm", ClassCrossZone, 0},       // new provider row
		{"ibm", ClassInternet, 0.1},      // new row falls back to the (overridden) default
		{"gcp", ClassInternet, 0.12},     // untouched provider
		{"alibaba", ClassCrossZone, 0.0}, // untouched provider
	}
	for _, c := range checks {
		if got := r.Prices.Price(c.provider, c.class); got != c.want {
			t.Errorf("Price(%q, %s) = %g, want %g", c.provider, c.class, got, c.want)
		}
	}
	if r.Version != 7 || r.RuleType != RuleBasic {
		t.Errorf("version %d, rule type %s", r.Version, r.RuleType)
	}

	// Sign, verify, and a later file supersedes an earlier one.
	_, key, _ := ed25519.GenerateKey(nil)
	first, _ := LoadRulesFile([]byte(`{"ruleType":"basic"}`), "cn", t0)
	second, _ := LoadRulesFile([]byte(`{"ruleType":"cost-prioritized"}`), "cn", t0.Add(time.Hour))
	for _, x := range []*Rules{first, second} {
		if err := SignRules(key, x); err != nil {
			t.Fatal(err)
		}
		if err := x.Verify("cn", key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
	}
	if !Newer(second, first) || Newer(first, second) {
		t.Error("the later file should supersede the earlier one")
	}
}

func TestLoadRulesFileBad(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"garbage", `ruleType: basic`, "bad JSON"},
		{"no rule type", `{"prices":{}}`, `"ruleType" is required`},
		{"unknown rule type", `{"ruleType":"cheap"}`, `rule type "cheap"`},
		{"typo field", `{"ruleType":"basic","price":{}}`, `unknown field "price"`},
		{"negative", `{"ruleType":"basic","prices":{"providers":{"aws":{"internet":-0.09}}}}`, "negative"},
		{"unknown class", `{"ruleType":"basic","prices":{"default":{"cross_zone":0.01}}}`, `unknown class "cross_zone"`},
		{"empty provider", `{"ruleType":"basic","prices":{"providers":{" ":{"internet":1}}}}`, "provider name"},
		{"trailing", `{"ruleType":"basic"} {}`, "trailing data"},
		{"oversized", `{"ruleType":"basic"}` + strings.Repeat(" ", MaxRulesSize), "at most"},
	}
	for _, tc := range tests {
		if r, err := LoadRulesFile([]byte(tc.data), "cn", t0); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, %v; want an error containing %q", tc.name, r, err, tc.want)
		}
	}
	if _, err := LoadRulesFile([]byte(`{"ruleType":"basic"}`), "cn", time.Unix(0, 0)); err == nil {
		t.Error("no version and a clock at the epoch: accepted")
	}
	if _, err := LoadRulesFile([]byte(`{"ruleType":"basic"}`), "", t0); err == nil {
		t.Error("empty CLADNet ID accepted")
	}
}
