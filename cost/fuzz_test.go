package cost

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
)

// FuzzParseRules: ParseRules never panics on a gossiped document; one it
// accepts re-encodes to a document it accepts again with the same verdict
// of Verify, and an accepted signed document never verifies under another
// key.
func FuzzParseRules(f *testing.F) {
	seed := make([]byte, ed25519.SeedSize)
	owner := ed25519.NewKeyFromSeed(seed)
	pub := owner.Public().(ed25519.PublicKey)
	other := ed25519.NewKeyFromSeed(append(seed[:31:31], 1)).Public().(ed25519.PublicKey)
	r := DefaultRules("cnabc", RuleCostPrioritized)
	r.Version = 3
	if err := SignRules(owner, r); err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(r)
	f.Add(good)
	f.Add([]byte(`{"cladnetId":"cnabc","version":1,"ruleType":"basic","prices":{},"issuedAt":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRules(b)
		if err != nil {
			return
		}
		first := r.Verify("cnabc", pub)
		if first == nil && r.Verify("cnabc", other) == nil {
			t.Fatal("verifies under two owner keys")
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted rules do not encode: %v", err)
		}
		back, err := ParseRules(enc)
		if err != nil {
			t.Fatalf("re-encoded rules refused: %v", err)
		}
		if again := back.Verify("cnabc", pub); (first == nil) != (again == nil) {
			t.Fatalf("verification changed across a round trip: %v, then %v", first, again)
		}
	})
}
