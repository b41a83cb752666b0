package cost

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func signed(t *testing.T, key ed25519.PrivateKey, id string, version uint64) *Rules {
	t.Helper()
	r := DefaultRules(id, RuleCostPrioritized)
	r.Version = version
	r.IssuedAt = t0
	if err := SignRules(key, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSignVerify(t *testing.T) {
	key := newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	r := signed(t, key, "cnabc", 3)
	if err := r.Verify("cnabc", pub); err != nil {
		t.Fatalf("fresh rules: %v", err)
	}

	// Through JSON, as gossip and disk carry it.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRules(b)
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	if err := back.Verify("cnabc", pub); err != nil {
		t.Fatalf("after a JSON round trip: %v", err)
	}

	tamper := map[string]func(r *Rules){
		"price":      func(r *Rules) { r.Prices.Providers["aws"][ClassInternet] = 0.001 },
		"new row":    func(r *Rules) { r.Prices.Providers["ibm"] = ClassPrices{ClassInternet: 0} },
		"version":    func(r *Rules) { r.Version = 99 },
		"rule type":  func(r *Rules) { r.RuleType = RuleBasic },
		"issued at":  func(r *Rules) { r.IssuedAt = r.IssuedAt.Add(time.Second) },
		"signature":  func(r *Rules) { r.Signature = "AAAA" + r.Signature[4:] },
		"not base64": func(r *Rules) { r.Signature = "!!" },
	}
	for name, f := range tamper {
		c := r.Clone()
		f(c)
		if err := c.Verify("cnabc", pub); !errors.Is(err, ErrRulesBadSignature) {
			t.Errorf("tampered %s: got %v, want ErrRulesBadSignature", name, err)
		}
	}
	if r.Prices.Providers["aws"][ClassInternet] != 0.09 {
		t.Fatal("Clone shares the price table")
	}

	other := newKey(t).Public().(ed25519.PublicKey)
	if err := r.Verify("cnabc", other); !errors.Is(err, ErrRulesBadSignature) {
		t.Errorf("other owner key: got %v", err)
	}
	if err := r.Verify("cnother", pub); !errors.Is(err, ErrRulesForeign) {
		t.Errorf("other CLADNet: got %v", err)
	}
	moved := r.Clone()
	moved.CladnetID = "cnother" // replayed into another CLADNet of the same owner
	if err := moved.Verify("cnother", pub); !errors.Is(err, ErrRulesBadSignature) {
		t.Errorf("rules moved to another CLADNet: got %v", err)
	}
	unsigned := r.Clone()
	unsigned.Signature = ""
	if err := unsigned.Verify("cnabc", pub); !errors.Is(err, ErrRulesUnsigned) {
		t.Errorf("unsigned: got %v", err)
	}
	if err := DefaultRules("cnabc", RuleBasic).Verify("cnabc", pub); !errors.Is(err, ErrRulesUnsigned) {
		t.Errorf("built-in rules: got %v", err)
	}
	if err := r.Verify("cnabc", pub[:5]); err == nil {
		t.Error("short owner key accepted")
	}
	var none *Rules
	if err := none.Verify("cnabc", pub); err == nil {
		t.Error("nil rules verified")
	}
}

func TestSignRulesRejects(t *testing.T) {
	key := newKey(t)
	tests := map[string]func(r *Rules){
		"version 0":         func(r *Rules) { r.Version = 0 },
		"no cladnet":        func(r *Rules) { r.CladnetID = "" },
		"unknown rule type": func(r *Rules) { r.RuleType = "fastest" },
		"negative price":    func(r *Rules) { r.Prices.Default[ClassCrossZone] = -0.01 },
		"NaN price":         func(r *Rules) { r.Prices.Providers["gcp"][ClassInternet] = math.NaN() },
		"infinite price":    func(r *Rules) { r.Prices.Default[ClassInternet] = math.Inf(1) },
	}
	for name, f := range tests {
		r := DefaultRules("cnabc", RuleBasic)
		r.Version = 1
		f(r)
		if err := SignRules(key, r); err == nil || r.Signature != "" {
			t.Errorf("%s: signed (err %v)", name, err)
		}
	}
	r := DefaultRules("cnabc", RuleBasic)
	r.Version = 1
	if err := SignRules(key[:10], r); err == nil {
		t.Error("short private key accepted")
	}
	// A zero IssuedAt is filled in.
	if err := SignRules(key, r); err != nil || r.IssuedAt.IsZero() || r.IssuedAt.Location() != time.UTC {
		t.Errorf("SignRules: %v, issuedAt %v", err, r.IssuedAt)
	}
}

func TestNewer(t *testing.T) {
	key := newKey(t)
	v1, v2 := signed(t, key, "cn", 1), signed(t, key, "cn", 2)
	builtin := DefaultRules("cn", RuleCostPrioritized)
	later := v2.Clone()
	later.IssuedAt = later.IssuedAt.Add(time.Minute)
	tests := []struct {
		name string
		a, b *Rules
		want bool
	}{
		{"higher version", v2, v1, true},
		{"lower version", v1, v2, false},
		{"signed beats built-in", v1, builtin, true},
		{"built-in never beats signed", builtin, v1, false},
		{"anything beats nil", builtin, nil, true},
		{"nil beats nothing", nil, builtin, false},
		{"same document", v1, v1.Clone(), false},
		{"same version, later issue", later, v2, true},
		{"same version, earlier issue", v2, later, false},
	}
	for _, tc := range tests {
		if got := Newer(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Newer = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Same version and time, different content: exactly one wins.
	x := signed(t, key, "cn", 5)
	y := DefaultRules("cn", RuleBasic)
	y.Version, y.IssuedAt = 5, t0
	if err := SignRules(key, y); err != nil {
		t.Fatal(err)
	}
	if Newer(x, y) == Newer(y, x) {
		t.Error("tie not broken deterministically")
	}
}

func TestParseRulesBad(t *testing.T) {
	key := newKey(t)
	good, err := json.Marshal(signed(t, key, "cn", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRules(good); err != nil {
		t.Fatalf("good document: %v", err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	prices := func(m map[string]any) map[string]any { return m["prices"].(map[string]any) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad JSON"},
		{"garbage", []byte("\x00\xffnot json"), "bad JSON"},
		{"array", []byte(`[1,2]`), "bad JSON"},
		{"trailing", append(append([]byte{}, good...), []byte(`{}`)...), "trailing data"},
		{"NaN literal", []byte(strings.Replace(string(good), `"internet":0.09`, `"internet":NaN`, 1)), "bad JSON"},
		{"overflowing number", []byte(strings.Replace(string(good), `"internet":0.09`, `"internet":1e999`, 1)), "bad JSON"},
		{"oversized", append(good, make([]byte, MaxRulesSize)...), "at most"},
		{"negative price", edit(func(m map[string]any) { prices(m)["default"].(map[string]any)["cross-zone"] = -1 }), "negative"},
		{"unknown class", edit(func(m map[string]any) { prices(m)["default"].(map[string]any)["lan"] = 0 }), `unknown class "lan"`},
		{"default row incomplete", edit(func(m map[string]any) { delete(prices(m)["default"].(map[string]any), "internet") }), `lacks class "internet"`},
		{"upper-case provider", edit(func(m map[string]any) { prices(m)["providers"].(map[string]any)["AWS"] = map[string]any{} }), "lower-case"},
		{"unknown rule type", edit(func(m map[string]any) { m["ruleType"] = "fastest" }), `rule type "fastest"`},
		{"version 0", edit(func(m map[string]any) { m["version"] = 0 }), "version must be greater than 0"},
		{"negative version", edit(func(m map[string]any) { m["version"] = -1 }), "bad JSON"},
		{"no cladnet", edit(func(m map[string]any) { delete(m, "cladnetId") }), "empty cladnetId"},
		{"price as string", edit(func(m map[string]any) { prices(m)["default"].(map[string]any)["internet"] = "0.09" }), "bad JSON"},
	}
	for _, tc := range tests {
		r, err := ParseRules(tc.data)
		if err == nil || r != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, %v; want an error containing %q", tc.name, r, err, tc.want)
		}
	}
	// Unknown fields are tolerated (newer writers).
	if _, err := ParseRules(edit(func(m map[string]any) { m["futureField"] = true })); err != nil {
		t.Errorf("unknown field: %v", err)
	}
}
