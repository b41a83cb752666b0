package cost

import (
	"encoding/json"
	"testing"
)

func TestDefaultPrices(t *testing.T) {
	p := DefaultPrices()
	if err := p.Validate(); err != nil {
		t.Fatalf("built-in prices invalid: %v", err)
	}
	want := map[string]ClassPrices{
		"aws":     {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0.02, ClassCrossVPC: 0.02, ClassCrossRegion: 0.02, ClassInternet: 0.09},
		"gcp":     {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0.01, ClassCrossVPC: 0.01, ClassCrossRegion: 0.02, ClassInternet: 0.12},
		"azure":   {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0.01, ClassCrossVPC: 0.01, ClassCrossRegion: 0.02, ClassInternet: 0.087},
		"alibaba": {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0, ClassCrossVPC: 0.074, ClassCrossRegion: 0.074, ClassInternet: 0.074},
		"":        {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0.01, ClassCrossVPC: 0.01, ClassCrossRegion: 0.02, ClassInternet: 0.09},
		"ibm":     {ClassSameSubnet: 0, ClassSameZone: 0, ClassCrossZone: 0.01, ClassCrossVPC: 0.01, ClassCrossRegion: 0.02, ClassInternet: 0.09},
	}
	for provider, row := range want {
		prev := -1.0
		for _, c := range Classes() {
			got := p.Price(provider, c)
			if got != row[c] {
				t.Errorf("Price(%q, %s) = %g, want %g", provider, c, got, row[c])
			}
			if got < prev {
				t.Errorf("%q: %s ($%g) cheaper than the class before it", provider, c, got)
			}
			prev = got
		}
	}
	if got := p.Price(" AWS ", ClassInternet); got != 0.09 {
		t.Errorf("provider name not normalized: %g", got)
	}
	// Each call returns a fresh table.
	p.Providers["aws"][ClassInternet] = 1
	if DefaultPrices().Providers["aws"][ClassInternet] != 0.09 {
		t.Error("DefaultPrices shares state between calls")
	}
}

func TestPriceFallbacks(t *testing.T) {
	p := PriceTable{
		Default:   row(0, 0, 0.01, 0.01, 0.02, 0.09),
		Providers: map[string]ClassPrices{"ibm": {ClassInternet: 0.05}},
	}
	if got := p.Price("ibm", ClassInternet); got != 0.05 {
		t.Errorf("override: %g", got)
	}
	if got := p.Price("ibm", ClassCrossRegion); got != 0.02 {
		t.Errorf("fallback to default row: %g", got)
	}
	if got := (PriceTable{Default: ClassPrices{ClassInternet: 0.3}}).Price("x", ClassCrossZone); got != 0.3 {
		t.Errorf("class missing everywhere should cost the internet price: %g", got)
	}
	if got := (PriceTable{}).Price("x", ClassCrossZone); got != 0 {
		t.Errorf("empty table: %g", got)
	}
}

func TestMerge(t *testing.T) {
	base := DefaultPrices()
	m := base.Merge(PriceTable{
		Default:   ClassPrices{ClassInternet: 0.1},
		Providers: map[string]ClassPrices{" AWS": {ClassCrossZone: 0.015}, "ibm": {ClassInternet: 0.09}},
	})
	if m.Default[ClassInternet] != 0.1 || m.Default[ClassCrossZone] != 0.01 {
		t.Errorf("default row: %v", m.Default)
	}
	if m.Providers["aws"][ClassCrossZone] != 0.015 || m.Providers["aws"][ClassInternet] != 0.09 {
		t.Errorf("aws row: %v", m.Providers["aws"])
	}
	if len(m.Providers["ibm"]) != 1 || m.Price("ibm", ClassCrossRegion) != 0.02 {
		t.Errorf("new ibm row: %v", m.Providers["ibm"])
	}
	if base.Default[ClassInternet] != 0.09 || base.Providers["aws"][ClassCrossZone] != 0.02 || base.Providers["ibm"] != nil {
		t.Error("Merge changed its receiver")
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
}

func TestPriceTableJSON(t *testing.T) {
	b, err := json.Marshal(PriceTable{Default: row(0, 0, 0.01, 0.01, 0.02, 0.09)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"default":{"cross-region":0.02,"cross-vpc":0.01,"cross-zone":0.01,"internet":0.09,"same-subnet":0,"same-zone":0}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}
