package cost

import (
	"math"
	"sort"
	"sync"
)

// BytesPerGB is the GB used for prices: decimal, 1e9 bytes, as the cloud
// providers bill data transfer.
const BytesPerGB = 1e9

// Meter records the bytes sent to each peer per path class, with the price
// paid and the price the public path would have cost, and reports the
// dollars spent and saved. The zero value is ready to use and a Meter is
// safe for concurrent use.
//
// Bytes are kept exactly (uint64) per peer, class and price pair; dollars
// are computed at Report time, so a price change applies only to the bytes
// sent after it.
type Meter struct {
	mu    sync.Mutex
	peers map[string]map[bucket]uint64
}

// bucket is what bytes are summed under.
type bucket struct {
	class         Class
	price, public float64
}

// NewMeter returns an empty meter.
func NewMeter() *Meter { return &Meter{} }

// Add records bytes sent to peer over a path of the given class, at
// pricePerGB, where the public path would cost publicPricePerGB (typically
// Decision.PricePerGB and Decision.PublicPricePerGB). A negative or
// non-finite price counts as 0. Counts saturate at the uint64 maximum.
func (m *Meter) Add(peer string, class Class, pricePerGB, publicPricePerGB float64, bytes uint64) {
	if bytes == 0 {
		return
	}
	b := bucket{class: class, price: cleanPrice(pricePerGB), public: cleanPrice(publicPricePerGB)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.peers == nil {
		m.peers = map[string]map[bucket]uint64{}
	}
	p := m.peers[peer]
	if p == nil {
		p = map[bucket]uint64{}
		m.peers[peer] = p
	}
	if n := p[b] + bytes; n >= bytes {
		p[b] = n
	} else {
		p[b] = math.MaxUint64
	}
}

// AddDecision records bytes sent to peer along the path d chose.
func (m *Meter) AddDecision(peer string, d Decision, bytes uint64) {
	m.Add(peer, d.Class, d.PricePerGB, d.PublicPricePerGB, bytes)
}

// Forget drops what was recorded for peer (for example when it leaves).
func (m *Meter) Forget(peer string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.peers, peer)
}

func cleanPrice(p float64) float64 {
	if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
		return 0
	}
	return p
}

// Usage is traffic and its cost. Dollar amounts are USD, computed as
// bytes / 1e9 × price per GB and rounded to 1e-9 USD.
type Usage struct {
	Bytes uint64 `json:"bytes"`
	// SpentUSD is the cost of the bytes on the paths actually used.
	SpentUSD float64 `json:"spentUsd"`
	// BasicUSD is what the same bytes would have cost on the public path,
	// i.e. under the basic rule.
	BasicUSD float64 `json:"basicUsd"`
	// SavedUSD is BasicUSD - SpentUSD (negative if the paths used cost
	// more than the public one, which Decide never chooses).
	SavedUSD float64 `json:"savedUsd"`
}

// PeerReport is one peer's usage, in total and per class.
type PeerReport struct {
	Peer string `json:"peer"`
	Usage
	Classes map[Class]Usage `json:"classes"`
}

// Report is a meter's totals: per peer (sorted by peer), per class over all
// peers, and overall.
type Report struct {
	Peers   []PeerReport    `json:"peers"`
	Classes map[Class]Usage `json:"classes"`
	Total   Usage           `json:"total"`
}

// acc sums unrounded dollars.
type acc struct {
	bytes         uint64
	spent, public float64
}

func (a *acc) add(bytes uint64, price, public float64) {
	if n := a.bytes + bytes; n >= bytes {
		a.bytes = n
	} else {
		a.bytes = math.MaxUint64
	}
	gb := float64(bytes) / BytesPerGB
	a.spent += gb * price
	a.public += gb * public
}

func (a acc) usage() Usage {
	spent, basic := roundUSD(a.spent), roundUSD(a.public)
	return Usage{Bytes: a.bytes, SpentUSD: spent, BasicUSD: basic, SavedUSD: roundUSD(a.public - a.spent)}
}

// roundUSD rounds to a nano-dollar, so sums such as 0.18 - 0.02 come out as
// 0.16 and not 0.15999999999999998.
func roundUSD(x float64) float64 { return math.Round(x*1e9) / 1e9 }

// Report returns the meter's current totals.
func (m *Meter) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := Report{Peers: make([]PeerReport, 0, len(m.peers)), Classes: map[Class]Usage{}}
	var total acc
	classTotals := map[Class]*acc{}
	for name, buckets := range m.peers {
		var peerTotal acc
		perClass := map[Class]*acc{}
		for b, n := range buckets {
			peerTotal.add(n, b.price, b.public)
			total.add(n, b.price, b.public)
			get(perClass, b.class).add(n, b.price, b.public)
			get(classTotals, b.class).add(n, b.price, b.public)
		}
		pr := PeerReport{Peer: name, Usage: peerTotal.usage(), Classes: make(map[Class]Usage, len(perClass))}
		for c, a := range perClass {
			pr.Classes[c] = a.usage()
		}
		rep.Peers = append(rep.Peers, pr)
	}
	sort.Slice(rep.Peers, func(i, j int) bool { return rep.Peers[i].Peer < rep.Peers[j].Peer })
	for c, a := range classTotals {
		rep.Classes[c] = a.usage()
	}
	rep.Total = total.usage()
	return rep
}

func get(m map[Class]*acc, c Class) *acc {
	a := m[c]
	if a == nil {
		a = &acc{}
		m[c] = a
	}
	return a
}
