package operator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// The watch's state survives a restart of the operator: the members that
// went away (lost, left, revoked — with their last path table, so their
// spend stays in the sums), the event log and the cost history are saved
// in DIR/<name>/console.json, at most every saveEvery and when the watch
// stops. Members in the table are not saved: the gossip brings them back.

const (
	consoleFile = "console.json"
	saveEvery   = 5 * time.Second
)

// savedMember is a gone member as saved.
type savedMember struct {
	Peer   api.Peer            `json:"peer"`
	Status string              `json:"status"`
	GoneAt time.Time           `json:"goneAt"`
	Rule   *api.NetworkingRule `json:"rule,omitempty"`
	RuleAt time.Time           `json:"ruleAt,omitzero"`
	// Seq is the sequence number of its last announcement seen: only a
	// newer one brings it back.
	Seq uint64 `json:"seq,omitempty"`
}

type savedWatch struct {
	Gone    []savedMember `json:"gone"`
	Events  []Event       `json:"events"`
	History []CostSample  `json:"history"`
}

// load reads the saved state, if any (a missing or unreadable file starts
// afresh: this is a view, not a source of truth).
func (w *watch) load(dir string) {
	w.file = filepath.Join(dir, consoleFile)
	b, err := os.ReadFile(w.file)
	if err != nil {
		return
	}
	var sv savedWatch
	if err := json.Unmarshal(b, &sv); err != nil {
		w.o.log.Warn("console state unreadable, starting afresh", "file", w.file, "err", err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range sv.Gone {
		if g.Peer.HostID == "" || (g.Status != StatusLost && g.Status != StatusLeft && g.Status != StatusRevoked) {
			continue
		}
		w.seen[g.Peer.HostID] = &watched{peer: g.Peer, status: g.Status, goneAt: g.GoneAt, rule: g.Rule, ruleAt: g.RuleAt, seq: g.Seq}
	}
	w.events = sv.Events
	if len(w.events) > maxEvents {
		w.events = w.events[len(w.events)-maxEvents:]
	}
	w.hist = sv.History
	if len(w.hist) > maxCostSamples {
		w.hist = w.hist[len(w.hist)-maxCostSamples:]
	}
}

// save writes the state if it changed since the last save (force: also
// within saveEvery of it).
func (w *watch) save(now time.Time, force bool) {
	w.mu.Lock()
	if w.file == "" || !w.dirty || (!force && now.Sub(w.saved) < saveEvery) {
		w.mu.Unlock()
		return
	}
	sv := savedWatch{Gone: []savedMember{}, Events: append([]Event{}, w.events...), History: append([]CostSample{}, w.hist...)}
	for _, m := range w.seen {
		if !m.goneAt.IsZero() {
			sv.Gone = append(sv.Gone, savedMember{Peer: m.peer, Status: m.status, GoneAt: m.goneAt, Rule: m.rule, RuleAt: m.ruleAt, Seq: m.seq})
		}
	}
	w.dirty, w.saved = false, now
	w.mu.Unlock()
	b, err := json.Marshal(sv)
	if err == nil {
		err = atomicfile.Write(w.file, b, 0o600)
	}
	if err != nil {
		w.o.log.Warn("console state not saved", "file", w.file, "err", err)
	}
}
