package operator

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/remote"
)

// The watch is what the console shows beyond the members table: it keeps
// members that went away (lost after missed heartbeats, or left), each
// member's path table with its traffic and metered cost (fetched from the
// member over /cbnode/pathtable, every 3 s while the console is open, every
// minute otherwise), a history of the CLADNet's total spend,
// and an event log (joins, leaves, losses, revocations, state and path
// changes, rules, revocation-list and control versions, test runs). It is
// saved in the CLADNet's directory (watchstore.go).

// Console statuses of a member (ConsoleMember.Status).
const (
	StatusUp      = "up"      // tunneling, data plane up
	StatusDown    = "down"    // in the table, but not carrying packets (configuring, DOWN, failed)
	StatusLost    = "lost"    // dropped after missed heartbeats
	StatusLeft    = "left"    // announced a graceful leave
	StatusRevoked = "revoked" // in the CLADNet's revocation list
)

// Watch limits and timing.
const (
	watchEvery = time.Second // members snapshot
	// pathsEvery is how often the path tables are fetched while someone
	// looks (an overview in the last viewedFor), idleEvery otherwise: a
	// CLADNet nobody watches costs each member one small request a minute.
	pathsEvery     = 3 * time.Second
	idleEvery      = time.Minute
	viewedFor      = time.Minute
	maxEvents      = 500
	maxCostSamples = 720 // 36 min at pathsEvery
	maxGone        = 1000
	pathsParallel  = 8
)

// Event is one line of the console's event log.
type Event struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // join, leave, lost, revoked, state, path, rules, revocation, control, test
	Host    string    `json:"host,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Message string    `json:"message"`
}

// ConsoleMember is one row of the console's members table: the peer as GET
// .../peer lists it, its console status, and its own path table.
type ConsoleMember struct {
	api.Peer
	Status string    `json:"status"`
	GoneAt time.Time `json:"goneAt,omitzero"`
	// PathCounts counts its paths by kind; Paths is its networking rule
	// (one row per other member, with traffic) when the request asked for
	// it (?paths=), as of PathsAt; PathsError says why it is stale.
	PathCounts PathCounts     `json:"pathCounts"`
	Paths      []api.PathRule `json:"paths"`
	PathsAt    time.Time      `json:"pathsAt,omitzero"`
	PathsError string         `json:"pathsError,omitempty"`
	TxBytes    uint64         `json:"txBytes"`
	RxBytes    uint64         `json:"rxBytes"`
}

// PathCounts are a member's paths by kind.
type PathCounts struct {
	Direct  int `json:"direct"`
	Relayed int `json:"relayed"`
	None    int `json:"none"` // no live packet stream
}

// maxPairs bounds CostSummary.Pairs (the biggest first).
const maxPairs = 200

// PairCost is what one member spent sending to another over one path class.
type PairCost struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Class string `json:"pathClass"`
	cost.Usage
}

// CostSample is the CLADNet's total spend at one time.
type CostSample struct {
	At time.Time `json:"at"`
	cost.Usage
}

// CostSummary sums every member's metered spend (each member meters what it
// sends; a member that went away keeps its last report).
type CostSummary struct {
	Classes map[string]cost.Usage `json:"classes"`
	Pairs   []PairCost            `json:"pairs"` // the maxPairs biggest by bytes
	// PairCount is how many pairs there are in all.
	PairCount int          `json:"pairCount"`
	Total     cost.Usage   `json:"total"`
	History   []CostSample `json:"history"`
}

// Overview is GET /v1/cladnet/{cladnetId}/overview: everything the
// console's CLADNet view shows, in one answer.
type Overview struct {
	CladnetID         string          `json:"cladnetId"`
	Name              string          `json:"name"`
	DataPlane         string          `json:"dataPlane"`
	RuleType          string          `json:"ruleType"`
	RulesVersion      uint64          `json:"rulesVersion"`
	RevocationVersion uint64          `json:"revocationVersion"`
	Prices            cost.PriceTable `json:"prices"`
	Members           []ConsoleMember `json:"members"`
	Events            []Event         `json:"events"` // newest first
	Cost              CostSummary     `json:"cost"`
	UpdatedAt         time.Time       `json:"updatedAt"`
}

// watched is what the watch remembers of one member.
type watched struct {
	peer    api.Peer
	status  string
	goneAt  time.Time
	rule    *api.NetworkingRule
	ruleAt  time.Time
	ruleErr string
	paths   map[string]string // peer ID → "direct"/"relayed", for path events
	seq     uint64            // sequence number of its last announcement seen
}

type watch struct {
	s      *cladnetSwarm
	o      *Operator
	mu     sync.Mutex
	seen   map[string]*watched // by peer ID
	events []Event             // oldest first
	hist   []CostSample
	rules  uint64
	revs   uint64
	plane  string
	viewed atomic.Int64 // Unix nanoseconds of the last overview
	file   string       // watchstore.go
	dirty  bool
	saved  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startWatch starts the watch's goroutine; close stops it and waits.
func (o *Operator) startWatch(s *cladnetSwarm) *watch {
	ctx, cancel := context.WithCancel(o.base)
	w := &watch{s: s, o: o, seen: map[string]*watched{}, cancel: cancel}
	w.load(o.store.cladnetDir(s.owner))
	w.rules = s.rules.Current().Version
	if cur := s.revs.Current(); cur != nil {
		w.revs = cur.Version
	}
	w.plane = dataPlane(s)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop(ctx)
	}()
	return w
}

func (w *watch) close() {
	w.cancel()
	w.wg.Wait()
	w.save(time.Now(), true)
}

func dataPlane(s *cladnetSwarm) string {
	if s.control.Down() {
		return overlay.DataPlaneDown
	}
	return overlay.DataPlaneUp
}

func (w *watch) loop(ctx context.Context) {
	members := time.NewTicker(watchEvery)
	defer members.Stop()
	paths := time.NewTicker(pathsEvery)
	defer paths.Stop()
	changed, stop := w.s.mem.Watch()
	defer stop()
	w.snapshot(time.Now())
	w.fetchPaths(ctx)
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			w.snapshot(time.Now())
		case <-members.C:
			w.snapshot(time.Now())
			w.save(time.Now(), false)
		case now := <-paths.C:
			if now.Sub(time.Unix(0, w.viewed.Load())) > viewedFor && now.Sub(last) < idleEvery {
				continue
			}
			w.fetchPaths(ctx)
			last = time.Now()
		}
	}
}

// add appends an event. The caller holds w.mu.
func (w *watch) add(e Event) {
	w.dirty = true
	w.events = append(w.events, e)
	if len(w.events) > maxEvents {
		w.events = append(w.events[:0:0], w.events[len(w.events)-maxEvents:]...)
	}
}

// note records an event from outside the loop (a test run).
func (w *watch) note(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.add(e)
}

func statusOf(a *overlay.Announcement, plane string) string {
	if a.State == overlay.StateTunneling && plane == overlay.DataPlaneUp {
		return StatusUp
	}
	return StatusDown
}

// snapshot compares the members table, the revocation list, the rules and
// the control document with what it saw last and logs the differences.
func (w *watch) snapshot(now time.Time) {
	s := w.s
	plane := dataPlane(s)
	live := map[string]bool{}
	var revoked map[string]bool
	revList := s.revs.Current()
	if revList != nil {
		revoked = map[string]bool{}
		for _, e := range revList.Entries {
			revoked[e.PeerID] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range s.mem.Members() {
		if m.Self {
			continue
		}
		id := m.ID.String()
		live[id] = true
		st := statusOf(m.Ann, plane)
		prev, ok := w.seen[id]
		p := s.toPeer(m)
		var seq uint64
		if m.Ann != nil {
			seq = m.Ann.Seq
		}
		switch {
		case ok && (prev.status == StatusLost || prev.status == StatusLeft) && seq <= prev.seq:
			// An old record of a gone member (a peer still handing it
			// on, or a restarted operator's first table): not a return.
			continue
		case !ok || prev.status == StatusLost || prev.status == StatusLeft:
			msg := "joined"
			if ok {
				msg = "came back (" + prev.status + " since " + prev.goneAt.UTC().Format(time.TimeOnly) + " UTC)"
			}
			if p.IP != "" {
				msg += " with " + p.IP
			}
			w.add(Event{At: now, Kind: "join", Host: p.HostName, Peer: id, Message: msg})
			w.seen[id] = &watched{peer: p, status: st, seq: seq}
			if ok {
				w.seen[id].rule, w.seen[id].ruleAt, w.seen[id].paths = prev.rule, prev.ruleAt, prev.paths
			}
		default:
			if prev.status != st {
				w.add(Event{At: now, Kind: "state", Host: p.HostName, Peer: id, Message: prev.status + " → " + st + " (" + m.Ann.State + ")"})
			}
			prev.peer, prev.status, prev.goneAt, prev.seq = p, st, time.Time{}, seq
		}
	}
	hb, missed := w.o.cfg.Heartbeat, w.o.cfg.MissedHeartbeats
	if hb <= 0 {
		hb = overlay.DefaultHeartbeat
	}
	if missed <= 0 {
		missed = overlay.DefaultMissedHeartbeats
	}
	for id, m := range w.seen {
		if live[id] {
			continue
		}
		switch {
		case revoked[id] && m.status != StatusRevoked:
			m.status, m.goneAt = StatusRevoked, now
			w.add(Event{At: now, Kind: "revoked", Host: m.peer.HostName, Peer: id, Message: "revoked: its connections are closed and its address is free"})
		case m.status == StatusUp || m.status == StatusDown:
			// The overlay keeps how a member went (its signed leave, or a
			// detector's death notice); without that record, a member
			// silent for missed heartbeats is taken as lost.
			left, known := false, false
			if pid, err := peer.Decode(id); err == nil {
				left, known = s.mem.Departure(pid)
			}
			if (known && !left) || (!known && now.Sub(m.peer.LastSeen) >= time.Duration(missed-1)*hb) {
				m.status = StatusLost
				w.add(Event{At: now, Kind: "lost", Host: m.peer.HostName, Peer: id, Message: "lost: no heartbeat since " + m.peer.LastSeen.UTC().Format(time.TimeOnly) + " UTC"})
			} else {
				m.status = StatusLeft
				w.add(Event{At: now, Kind: "leave", Host: m.peer.HostName, Peer: id, Message: "left"})
			}
			m.goneAt = now
		}
	}
	if len(w.seen) > maxGone {
		w.trimGone()
	}
	if v := s.rules.Current(); v.Version != w.rules {
		w.rules = v.Version
		w.add(Event{At: now, Kind: "rules", Message: "rules version " + itoa(v.Version) + " in force (" + v.RuleType + ")"})
	}
	if revList != nil && revList.Version != w.revs {
		w.revs = revList.Version
		w.add(Event{At: now, Kind: "revocation", Message: "revocation list version " + itoa(revList.Version) + " (" + itoa(uint64(len(revList.Entries))) + " revoked)"})
	}
	if plane != w.plane {
		w.plane = plane
		w.add(Event{At: now, Kind: "control", Message: "data plane " + plane})
	}
}

// trimGone forgets the members gone longest ago. The caller holds w.mu.
func (w *watch) trimGone() {
	var gone []string
	for id, m := range w.seen {
		if !m.goneAt.IsZero() {
			gone = append(gone, id)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return w.seen[gone[i]].goneAt.Before(w.seen[gone[j]].goneAt) })
	for _, id := range gone[:max(0, len(w.seen)-maxGone)] {
		delete(w.seen, id)
	}
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// fetchPaths asks every live member for its networking rule (a few at a
// time) and logs path changes (relayed ↔ direct), then samples the cost.
func (w *watch) fetchPaths(ctx context.Context) {
	s := w.s
	members := s.mem.Members()
	cert, err := s.askCert(w.o.node.Host.ID(), time.Now())
	if err != nil {
		return
	}
	sem := make(chan struct{}, pathsParallel)
	var wg sync.WaitGroup
	for _, m := range members {
		if m.Self {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(id peer.ID) {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, remoteTimeout/2)
			nr, err := remote.FetchNetworkingRule(cctx, w.o.node.Host, id, s.owner.Spec.ID, cert)
			cancel()
			w.gotRule(id.String(), nr, err, time.Now())
		}(m.ID)
	}
	wg.Wait()
	w.sampleCost(time.Now())
}

func pathKind(r api.PathRule) string {
	switch {
	case r.Remote == "":
		return "none"
	case r.Relayed:
		return "relayed"
	}
	return "direct"
}

func (w *watch) gotRule(id string, nr api.NetworkingRule, err error, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.seen[id]
	if m == nil {
		return
	}
	if err != nil {
		m.ruleErr = err.Error()
		return
	}
	m.rule, m.ruleAt, m.ruleErr = &nr, now, ""
	next := map[string]string{}
	for _, r := range nr.Rules {
		k := pathKind(r)
		next[r.HostID] = k
		if was, ok := m.paths[r.HostID]; ok && was != k && k != "none" && was != "none" {
			w.add(Event{At: now, Kind: "path", Host: m.peer.HostName, Peer: id, Message: "path to " + r.HostName + ": " + was + " → " + k})
		}
	}
	m.paths = next
}

// sampleCost appends the current total to the history.
func (w *watch) sampleCost(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.costLocked()
	if n := len(w.hist); n > 0 && w.hist[n-1].Usage == c.Total && n > 1 && w.hist[n-2].Usage == c.Total {
		w.hist[n-1].At = now.UTC() // a flat stretch: move its end, keep two points
		return
	}
	w.dirty = true
	w.hist = append(w.hist, CostSample{At: now.UTC(), Usage: c.Total})
	if len(w.hist) > maxCostSamples {
		w.hist = append(w.hist[:0:0], w.hist[len(w.hist)-maxCostSamples:]...)
	}
}

// costLocked sums the members' reports. The caller holds w.mu.
func (w *watch) costLocked() CostSummary {
	out := CostSummary{Classes: map[string]cost.Usage{}, Pairs: []PairCost{}}
	ids := make([]string, 0, len(w.seen))
	for id := range w.seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var total acc
	classes := map[string]*acc{}
	for _, id := range ids {
		m := w.seen[id]
		if m.rule == nil || m.rule.Cost == nil {
			continue
		}
		for _, pr := range m.rule.Cost.Peers {
			for cl, u := range pr.Classes {
				out.Pairs = append(out.Pairs, PairCost{From: m.peer.HostName, To: pr.Peer, Class: string(cl), Usage: u})
				a := classes[string(cl)]
				if a == nil {
					a = &acc{}
					classes[string(cl)] = a
				}
				a.add(u)
				total.add(u)
			}
		}
	}
	for cl, a := range classes {
		out.Classes[cl] = a.usage()
	}
	out.PairCount = len(out.Pairs)
	sort.SliceStable(out.Pairs, func(i, j int) bool { return out.Pairs[i].Bytes > out.Pairs[j].Bytes })
	if len(out.Pairs) > maxPairs {
		out.Pairs = out.Pairs[:maxPairs]
	}
	out.Total = total.usage()
	return out
}

// acc sums usages.
type acc struct {
	bytes               uint64
	spent, basic, saved float64
}

func (a *acc) add(u cost.Usage) {
	a.bytes += u.Bytes
	a.spent += u.SpentUSD
	a.basic += u.BasicUSD
	a.saved += u.SavedUSD
}

func round9(v float64) float64 { return float64(int64(v*1e9+0.5)) / 1e9 }

func (a *acc) usage() cost.Usage {
	return cost.Usage{Bytes: a.bytes, SpentUSD: round9(a.spent), BasicUSD: round9(a.basic), SavedUSD: round9(a.saved)}
}

// overview assembles the console's view; it carries the path rows of the
// members whose peer IDs withPaths holds (all: every member's).
func (w *watch) overview(now time.Time, withPaths map[string]bool, all bool) Overview {
	w.viewed.Store(now.UnixNano())
	s := w.s
	w.snapshot(now)
	rules := s.rules.Current()
	ov := Overview{CladnetID: s.owner.Spec.ID, Name: s.owner.Spec.Name, DataPlane: dataPlane(s), RuleType: rules.RuleType,
		RulesVersion: rules.Version, Prices: rules.Prices, Members: []ConsoleMember{}, Events: []Event{}, UpdatedAt: now.UTC()}
	revList := s.revs.Current()
	if revList != nil {
		ov.RevocationVersion = revList.Version
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	listed := map[string]bool{}
	for id, m := range w.seen {
		cm := ConsoleMember{Peer: m.peer, Status: m.status, GoneAt: m.goneAt.UTC(), Paths: []api.PathRule{}, PathsAt: m.ruleAt.UTC(), PathsError: m.ruleErr}
		if m.status == StatusRevoked {
			cm.State = api.StateRevoked
		}
		if m.rule != nil {
			if (all || withPaths[id]) && m.rule.Rules != nil {
				cm.Paths = m.rule.Rules
			}
			for _, r := range m.rule.Rules {
				cm.TxBytes += r.TxBytes
				cm.RxBytes += r.RxBytes
				switch pathKind(r) {
				case "direct":
					cm.PathCounts.Direct++
				case "relayed":
					cm.PathCounts.Relayed++
				default:
					cm.PathCounts.None++
				}
			}
		}
		ov.Members = append(ov.Members, cm)
		listed[id] = true
	}
	if revList != nil { // revoked before the watch saw them
		for _, e := range revList.Entries {
			if !listed[e.PeerID] {
				ov.Members = append(ov.Members, ConsoleMember{Peer: api.Peer{CladnetID: s.owner.Spec.ID, HostID: e.PeerID, HostName: e.HostName,
					State: api.StateRevoked, LastSeen: e.RevokedAt.UTC(), FirstSeen: e.RevokedAt.UTC()}, Status: StatusRevoked, GoneAt: e.RevokedAt.UTC(), Paths: []api.PathRule{}})
			}
		}
	}
	sort.Slice(ov.Members, func(i, j int) bool {
		if ov.Members[i].HostName != ov.Members[j].HostName {
			return ov.Members[i].HostName < ov.Members[j].HostName
		}
		return ov.Members[i].HostID < ov.Members[j].HostID
	})
	for i := len(w.events) - 1; i >= 0; i-- {
		e := w.events[i]
		e.At = e.At.UTC()
		ov.Events = append(ov.Events, e)
	}
	ov.Cost = w.costLocked()
	ov.Cost.History = append([]CostSample{}, w.hist...)
	return ov
}
