package cost

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
)

func TestFilterPolicyValidate(t *testing.T) {
	ok := []*FilterPolicy{
		nil,
		{},
		{Default: "deny"},
		{Default: "allow", Inbound: []FilterRule{{Action: "deny", Proto: "udp"}}},
		{Inbound: []FilterRule{
			{Name: "ssh", From: []string{"group:admin", "host:vm-1"}, To: []string{"*"}, Proto: "tcp", Ports: []string{"22", "8000-8100"}},
			{Proto: "ICMP", ICMPTypes: []int{0, 8}},
			{Proto: "udp", Ports: []string{"0-65535"}},
		}},
	}
	for _, p := range ok {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
	bad := map[string]*FilterPolicy{
		`default "drop"`:                {Default: "drop"},
		`action "reject"`:               {Inbound: []FilterRule{{Action: "reject"}}},
		`selector "admin"`:              {Inbound: []FilterRule{{From: []string{"admin"}}}},
		`selector "group:"`:             {Inbound: []FilterRule{{To: []string{"group:"}}}},
		`proto "sctp"`:                  {Inbound: []FilterRule{{Proto: "sctp"}}},
		"ports need proto tcp or udp":   {Inbound: []FilterRule{{Ports: []string{"22"}}}},
		"icmpTypes need proto icmp":     {Inbound: []FilterRule{{Proto: "tcp", ICMPTypes: []int{8}}}},
		`port "70000"`:                  {Inbound: []FilterRule{{Proto: "tcp", Ports: []string{"70000"}}}},
		`port range "9-1"`:              {Inbound: []FilterRule{{Proto: "tcp", Ports: []string{"9-1"}}}},
		"icmp type 300":                 {Inbound: []FilterRule{{Proto: "icmp", ICMPTypes: []int{300}}}},
		`two rules are named "rule-2"`:  {Inbound: []FilterRule{{Name: "rule-2"}, {}}},
		"inbound rules, at most":        {Inbound: make([]FilterRule, MaxFilterRules+1)},
		"name has 65 bytes, at most 64": {Inbound: []FilterRule{{Name: strings.Repeat("n", 65)}}},
	}
	for want, p := range bad {
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want an error containing %q", err, want)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	cases := []struct {
		sel  []string
		host string
		grp  []string
		want bool
	}{
		{nil, "a", nil, true},
		{[]string{"*"}, "a", nil, true},
		{[]string{"host:a"}, "a", nil, true},
		{[]string{"host:a"}, "b", []string{"a"}, false},
		{[]string{"group:web"}, "a", []string{"db", "web"}, true},
		{[]string{"group:web"}, "web", nil, false},
		{[]string{"group:x", "host:b"}, "b", nil, true},
	}
	for _, c := range cases {
		if got := SelectorMatches(c.sel, c.host, c.grp); got != c.want {
			t.Errorf("SelectorMatches(%v, %q, %v) = %v, want %v", c.sel, c.host, c.grp, got, c.want)
		}
	}
}

// A filter travels signed: tampering with it breaks the signature, and a
// document without one signs and verifies as before the field existed.
func TestFilterSigned(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	r := DefaultRules("cnabc", RuleBasic)
	r.Version, r.IssuedAt = 2, t0
	r.Filter = &FilterPolicy{Default: "deny", Inbound: []FilterRule{{From: []string{"group:admin"}, Proto: "tcp", Ports: []string{"22"}}}}
	if err := SignRules(key, r); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	back, err := ParseRules(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify("cnabc", pub); err != nil {
		t.Fatalf("verify after a round trip: %v", err)
	}
	back.Filter.Inbound[0].From = []string{"*"}
	if err := back.Verify("cnabc", pub); err == nil {
		t.Fatal("a widened filter rule still verifies")
	}
	c := r.Clone()
	c.Filter.Inbound[0].Ports[0] = "23"
	if r.Filter.Inbound[0].Ports[0] != "22" {
		t.Fatal("Clone shares the filter")
	}
	plain := signed(t, key, "cnabc", 3)
	pb, _ := json.Marshal(plain)
	if strings.Contains(string(pb), "filter") {
		t.Fatalf("a document without a filter carries the field: %s", pb)
	}
}

func TestLoadRulesFileFilter(t *testing.T) {
	doc := `{"ruleType":"basic","filter":{"default":"deny","inbound":[{"from":["group:web"],"proto":"tcp","ports":["80"]}]}}`
	r, err := LoadRulesFile([]byte(doc), "cnabc", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Filter == nil || r.Filter.Default != "deny" || len(r.Filter.Inbound) != 1 {
		t.Fatalf("filter not carried: %+v", r.Filter)
	}
	if _, err := LoadRulesFile([]byte(`{"ruleType":"basic","filter":{"default":"nope"}}`), "cnabc", t0); err == nil || !strings.Contains(err.Error(), "default") {
		t.Fatalf("bad filter accepted: %v", err)
	}
	if _, err := LoadRulesFile([]byte(`{"ruleType":"basic","filter":{"inbound":[{"prot":"tcp"}]}}`), "cnabc", t0); err == nil {
		t.Fatal("typo in a filter rule accepted")
	}
}
