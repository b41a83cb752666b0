package operator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
	"github.com/cloud-barista/cbnode/overlay"
)

// Test defaults and limits.
const (
	// KeepTestRuns is how many runs per CLADNet the operator keeps (in
	// memory and in DIR/<name>/tests/).
	KeepTestRuns        = 20
	defaultTrialCount   = 3
	defaultTestInterval = 200 * time.Millisecond
	// rowSlack is how long after the last trial the operator waits for rows.
	rowSlack = 8 * time.Second
)

// pendingRun collects the rows of one run in progress.
type pendingRun struct {
	swarm    *cladnetSwarm
	expected map[string]bool // host IDs
	mu       sync.Mutex
	rows     map[string]overlay.TestRow
	full     chan struct{} // closed when every expected row arrived
}

func (p *pendingRun) add(row overlay.TestRow) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.expected[row.From] {
		return errors.New("this member was not in the members table when the run started")
	}
	if _, dup := p.rows[row.From]; dup {
		return errors.New("row already received")
	}
	p.rows[row.From] = row
	if len(p.rows) == len(p.expected) {
		close(p.full)
	}
	return nil
}

// testStore keeps a CLADNet's last runs, oldest first.
type testStore struct {
	dir  string
	mu   sync.Mutex
	runs []*TestResult
}

func loadTests(dir string) *testStore {
	ts := &testStore{dir: dir}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var r TestResult
		if err == nil && json.Unmarshal(b, &r) == nil && r.RunID != "" {
			ts.runs = append(ts.runs, &r)
		}
	}
	sort.Slice(ts.runs, func(i, j int) bool { return ts.runs[i].StartedAt.Before(ts.runs[j].StartedAt) })
	ts.trim()
	return ts
}

// trim drops runs beyond KeepTestRuns (and their files). The caller holds
// ts.mu or owns ts.
func (ts *testStore) trim() {
	for len(ts.runs) > KeepTestRuns {
		_ = os.Remove(filepath.Join(ts.dir, ts.runs[0].RunID+".json"))
		ts.runs = ts.runs[1:]
	}
}

func (ts *testStore) add(r *TestResult) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.runs = append(ts.runs, r)
	ts.trim()
	if err := os.MkdirAll(ts.dir, 0o700); err != nil {
		return fmt.Errorf("test results: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(ts.dir, r.RunID+".json"), b, 0o600)
}

func (ts *testStore) get(runID string) (*TestResult, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, r := range ts.runs {
		if r.RunID == runID {
			return r, true
		}
	}
	return nil, false
}

// TestRunSummary is one line of GET /v1/test/cladnet/{id}.
type TestRunSummary struct {
	RunID         string    `json:"runId"`
	TestType      string    `json:"testType"`
	IsSucceeded   bool      `json:"isSucceeded"`
	Message       string    `json:"message"`
	TrialCount    int       `json:"trialCount"`
	Interval      string    `json:"interval"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	Hosts         int       `json:"hosts"`
	Pairs         int       `json:"pairs"`
	MeasuredPairs int       `json:"measuredPairs"`
}

// TestRuns is GET /v1/test/cladnet/{id}: the kept runs, newest first.
type TestRuns struct {
	CladnetID string           `json:"cladnetId"`
	Runs      []TestRunSummary `json:"runs"`
}

func (ts *testStore) list() []TestRunSummary {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := []TestRunSummary{}
	for i := len(ts.runs) - 1; i >= 0; i-- {
		r := ts.runs[i]
		s := TestRunSummary{RunID: r.RunID, TestType: r.TestType, IsSucceeded: r.IsSucceeded, Message: r.Message, TrialCount: r.TrialCount,
			Interval: r.Interval, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Hosts: len(r.Hosts), Pairs: len(r.Results.InterHostNetworkStatus)}
		for _, c := range r.Results.InterHostNetworkStatus {
			if c.Measured {
				s.MeasuredPairs++
			}
		}
		out = append(out, s)
	}
	return out
}

// handleTestRow is the TestResultProtocol handler: a row is accepted only
// for a run in progress, from a verified member of that run's CLADNet
// (the membership admits only owner-certified, unexpired peers) that sends
// its own row.
func (o *Operator) handleTestRow(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	remote := s.Conn().RemotePeer()
	reply := func(msg string) {
		_ = json.NewEncoder(s).Encode(map[string]string{"error": msg})
	}
	var row overlay.TestRow
	if err := json.NewDecoder(io.LimitReader(s, overlay.MaxTestRowSize)).Decode(&row); err != nil {
		reply("bad row: " + err.Error())
		return
	}
	o.runMu.Lock()
	p := o.pending[row.RunID]
	o.runMu.Unlock()
	switch {
	case p == nil:
		reply("no test run " + row.RunID + " in progress (finished or unknown)")
	case row.From != remote.String():
		reply("the row names another sender than the stream's peer")
	case !p.swarm.mem.IsMember(remote):
		reply("not a member of CLADNet " + p.swarm.owner.Spec.Name)
	default:
		if err := p.add(row); err != nil {
			reply(err.Error())
			return
		}
		reply("")
	}
}

// testSpec is cb-network's TestSpecification (trialCount) plus interval.
type testSpec struct {
	CladnetID  string `json:"cladnetId"`
	TrialCount int    `json:"trialCount"`
	Interval   string `json:"interval"`   // Go duration, e.g. "200ms"
	IntervalMs int64  `json:"intervalMs"` // alternative to interval
}

// parseTestBody reads {"testSpec": "<json string>" | {...}}; cb-network
// sends the spec as a JSON string, "" or "string" meaning the defaults.
func parseTestBody(r *http.Request) (testSpec, error) {
	spec := testSpec{}
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<16))
	if err != nil {
		return spec, fmt.Errorf("read body: %w", err)
	}
	if len(strings.TrimSpace(string(b))) > 0 {
		var body struct {
			TestSpec json.RawMessage `json:"testSpec"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return spec, fmt.Errorf(`bad JSON body (want {"testSpec":{"trialCount":N,"interval":"200ms"}}): %w`, err)
		}
		raw := body.TestSpec
		var str string
		if json.Unmarshal(raw, &str) == nil { // cb-network: a JSON string
			if str == "" || str == "string" {
				raw = nil
			} else {
				raw = json.RawMessage(str)
			}
		}
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &spec); err != nil {
				return spec, fmt.Errorf(`bad testSpec (want {"trialCount":N,"interval":"200ms"}): %w`, err)
			}
		}
	}
	return spec, nil
}

func (spec testSpec) request() (overlay.TestRequest, error) {
	req := overlay.TestRequest{TrialCount: spec.TrialCount, IntervalMs: spec.IntervalMs}
	if req.TrialCount == 0 {
		req.TrialCount = defaultTrialCount
	}
	if spec.Interval != "" {
		d, err := time.ParseDuration(spec.Interval)
		if err != nil {
			return req, fmt.Errorf("testSpec interval %q: %w (e.g. \"200ms\")", spec.Interval, err)
		}
		req.IntervalMs = d.Milliseconds()
	}
	if req.IntervalMs == 0 {
		req.IntervalMs = defaultTestInterval.Milliseconds()
	}
	return req, nil
}

func newRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// runTest asks every member of s to measure every other and assembles the
// matrix from the rows that arrive before the deadline.
func (o *Operator) runTest(ctx context.Context, s *cladnetSwarm, req overlay.TestRequest) (*TestResult, error) {
	var hosts []TestHost
	expected := map[string]bool{}
	for _, m := range s.mem.Members() {
		if m.Self || m.Ann.OverlayIP == "" {
			continue
		}
		hosts = append(hosts, TestHost{HostID: m.ID.String(), HostName: m.Ann.HostName, IP: m.Ann.OverlayIP})
		expected[m.ID.String()] = true
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("CLADNet %s has no members with an overlay address to test (GET .../peer lists them): %w", s.owner.Spec.Name, api.ErrConflict)
	}
	now := time.Now()
	wait := time.Duration(req.TrialCount)*req.Interval() + rowSlack
	req.RunID, req.ReportTo, req.Deadline = newRunID(now), o.PeerID().String(), now.Add(wait)
	p := &pendingRun{swarm: s, expected: expected, rows: map[string]overlay.TestRow{}, full: make(chan struct{})}
	o.runMu.Lock()
	if o.pending == nil {
		o.pending = map[string]*pendingRun{}
	}
	o.pending[req.RunID] = p
	o.runMu.Unlock()
	defer func() {
		o.runMu.Lock()
		delete(o.pending, req.RunID)
		o.runMu.Unlock()
	}()

	plane := overlay.DataPlaneUp
	if s.control.Down() {
		plane = overlay.DataPlaneDown
	}
	doc := &overlay.ControlDoc{CladnetID: s.owner.Spec.ID, Version: s.control.NextVersion(now), DataPlane: plane, Test: &req}
	if err := overlay.SignControl(s.owner.Key, doc); err != nil {
		return nil, badInput(err)
	}
	if _, err := s.control.Submit(ctx, doc); err != nil {
		return nil, fmt.Errorf("test request not spread: %w", err)
	}
	o.log.Info("connectivity test started", "cladnet", s.owner.Spec.Name, "run", req.RunID, "members", len(hosts), "trials", req.TrialCount, "interval", req.Interval())
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-p.full:
	case <-timer.C:
	case <-ctx.Done():
		return nil, fmt.Errorf("connectivity test %s: %w", req.RunID, ctx.Err())
	}
	p.mu.Lock()
	rows := make(map[string]overlay.TestRow, len(p.rows))
	for k, v := range p.rows {
		rows[k] = v
	}
	p.mu.Unlock()
	res := &TestResult{RunID: req.RunID, CladnetID: s.owner.Spec.ID, CladnetName: s.owner.Spec.Name, TestType: TestTypeConnectivity,
		TrialCount: req.TrialCount, Interval: req.Interval().String(), StartedAt: now.UTC(), FinishedAt: time.Now().UTC()}
	res.Hosts, res.Results.InterHostNetworkStatus = buildMatrix(hosts, rows, req.TrialCount)
	measured := 0
	for _, c := range res.Results.InterHostNetworkStatus {
		if c.Measured {
			measured++
		}
	}
	total := len(res.Results.InterHostNetworkStatus)
	res.IsSucceeded = measured == total
	res.Message = fmt.Sprintf("%d of %d members reported; %d of %d ordered pairs measured", len(rows), len(hosts), measured, total)
	if err := s.tests.add(res); err != nil {
		o.log.Warn("test result not saved", "run", res.RunID, "err", err)
	}
	o.log.Info("connectivity test done", "cladnet", s.owner.Spec.Name, "run", req.RunID, "result", res.Message)
	if s.watch != nil {
		s.watch.note(Event{At: time.Now(), Kind: "test", Message: "connectivity test " + res.RunID + ": " + res.Message})
	}
	return res, nil
}

// swarmOf looks a CLADNet up under o.mu.
func (o *Operator) swarmOf(key string) (*cladnetSwarm, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookup(key)
}

func (o *Operator) postTest(w http.ResponseWriter, r *http.Request) {
	tt := strings.ToUpper(r.PathValue("testType"))
	if tt != TestTypeConnectivity && tt != "RTT" {
		fail(w, badInput(fmt.Errorf("unknown testType %q: valid types are CONNECTIVITY (alias RTT)", r.PathValue("testType"))))
		return
	}
	s, err := o.swarmOf(r.PathValue("cladnetId"))
	if err != nil {
		fail(w, err)
		return
	}
	spec, err := parseTestBody(r)
	if err != nil {
		fail(w, badInput(err))
		return
	}
	req, err := spec.request()
	if err == nil {
		req.RunID, req.ReportTo = "check", o.PeerID().String()
		err = req.Validate()
	}
	if err != nil {
		fail(w, badInput(err))
		return
	}
	res, err := o.runTest(r.Context(), s, req)
	if err != nil {
		fail(w, err)
		return
	}
	writeResult(w, r, res)
}

func wantsCSV(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/csv") || r.URL.Query().Get("format") == "csv"
}

func writeResult(w http.ResponseWriter, r *http.Request, res *TestResult) {
	if wantsCSV(r) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+res.RunID+`.csv"`)
		_ = writeCSV(w, res)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (o *Operator) listTests(w http.ResponseWriter, r *http.Request) {
	s, err := o.swarmOf(r.PathValue("cladnetId"))
	if err != nil {
		fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, TestRuns{CladnetID: s.owner.Spec.ID, Runs: s.tests.list()})
}

func (o *Operator) getTest(w http.ResponseWriter, r *http.Request) {
	s, err := o.swarmOf(r.PathValue("cladnetId"))
	if err != nil {
		fail(w, err)
		return
	}
	res, ok := s.tests.get(r.PathValue("runId"))
	if !ok {
		fail(w, fmt.Errorf("no test run %q kept for CLADNet %s (GET /v1/test/cladnet/%s lists the last %d): %w", r.PathValue("runId"), s.owner.Spec.Name, s.owner.Spec.Name, KeepTestRuns, api.ErrNotFound))
		return
	}
	writeResult(w, r, res)
}
