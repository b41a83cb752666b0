package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/console"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/browser"
	"github.com/cloud-barista/cbnode/operator"
)

// fakeOperator answers the console's requests with a large CLADNet (150
// members, a 12-host test run) built from the operator's own types, and
// records the writes the page sends.
type fakeOperator struct {
	mu     sync.Mutex
	writes []string // "METHOD path body"
	ov     operator.Overview
	run    operator.TestResult
}

const fakeMembers, fakeHosts = 150, 12

func newFakeOperator() *fakeOperator {
	f := &fakeOperator{}
	now := time.Now().UTC()
	statuses := []string{"up", "up", "up", "down", "lost", "revoked"}
	for i := 0; i < fakeMembers; i++ {
		st := statuses[i%len(statuses)]
		m := operator.ConsoleMember{
			Peer: api.Peer{CladnetID: "cnbig", HostID: fmt.Sprintf("12D3KooWfake%03d", i), HostName: fmt.Sprintf("vm%d", i),
				IP: fmt.Sprintf("10.77.%d.%d", i/100, i%100+1), State: "tunneling",
				Details:  cost.CloudInfo{ProviderName: []string{"aws", "gcp", "azure"}[i%3], RegionID: fmt.Sprintf("region-%d", i%4)},
				LastSeen: now.Add(-time.Duration(i) * time.Second), CertUntil: now.Add(time.Duration(i) * time.Hour)},
			Status: st, TxBytes: uint64(i * 1000), RxBytes: uint64(i * 2000), PathCounts: operator.PathCounts{Direct: 1},
			Paths: []api.PathRule{{HostID: "x", HostName: "vm0", Remote: "/ip4/7.7.7.1/udp/7460/quic-v1", Class: "internet", PricePerGB: 0.09, TxBytes: 1}},
		}
		if st == "lost" || st == "revoked" {
			m.GoneAt = now.Add(-time.Minute)
		}
		f.ov.Members = append(f.ov.Members, m)
	}
	f.ov.CladnetID, f.ov.Name, f.ov.DataPlane, f.ov.RuleType, f.ov.UpdatedAt = "cnbig", "big", "up", "cost-prioritized", now
	f.ov.Prices = cost.DefaultPrices()
	f.ov.Events = []operator.Event{{At: now, Kind: "lost", Host: "vm4", Message: "lost: no heartbeat"}, {At: now, Kind: "join", Host: "vm0", Message: "joined"}}
	u := cost.Usage{Bytes: 2e9, SpentUSD: 0.02, BasicUSD: 0.18, SavedUSD: 0.16}
	f.ov.Cost = operator.CostSummary{Classes: map[string]cost.Usage{"same-zone": u}, Pairs: []operator.PairCost{{From: "vm0", To: "vm1", Class: "same-zone", Usage: u}}, Total: u,
		History: []operator.CostSample{{At: now.Add(-time.Minute), Usage: cost.Usage{}}, {At: now, Usage: u}}}
	f.run = operator.TestResult{IsSucceeded: false, Message: "12 of 12 members reported; 131 of 132 ordered pairs measured", RunID: "run2", CladnetID: "cnbig",
		CladnetName: "big", TestType: "CONNECTIVITY", TrialCount: 3, Interval: "200ms", StartedAt: now, FinishedAt: now}
	for i := 0; i < fakeHosts; i++ {
		f.run.Hosts = append(f.run.Hosts, operator.TestHost{HostID: fmt.Sprintf("12D3KooWfake%03d", i), HostName: fmt.Sprintf("vm%d", i), Reported: true})
	}
	for i, a := range f.run.Hosts {
		for j, b := range f.run.Hosts {
			if i == j {
				continue
			}
			s := operator.InterHostNetworkStatus{SourceName: a.HostName, DestinationName: b.HostName, SourceID: a.HostID, DestinationID: b.HostID,
				Measured: true, PacketsSent: 3, PacketsReceive: 3, MinRTTMs: float64(i + j), AvgRTTMs: float64(i+j) + 0.5, MaxRTTMs: float64(i+j) + 1}
			if i == 1 && j == 2 {
				s.Measured, s.PacketsReceive, s.LossPercent, s.Error = false, 0, 100, "no reply"
			}
			f.run.Results.InterHostNetworkStatus = append(f.run.Results.InterHostNetworkStatus, s)
		}
	}
	return f
}

func (f *fakeOperator) handler() http.Handler {
	mux := api.NewMux()
	console.Register(mux)
	js := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { api.WriteJSON(w, http.StatusOK, v) }
	}
	record := func(v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			f.writes = append(f.writes, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
			f.mu.Unlock()
			api.WriteJSON(w, http.StatusOK, v)
		}
	}
	spec := api.CLADNetSpecification{ID: "cnbig", Name: "big", IPv4AddressSpace: "10.77.0.0/16", RuleType: "cost-prioritized", Description: "150 members"}
	mux.HandleFunc("GET /v1/cladnet", js(api.CLADNetSpecifications{CLADNetSpecifications: []api.CLADNetSpecification{spec}}))
	mux.HandleFunc("GET /v1/cladnet/big/overview", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		api.WriteJSON(w, http.StatusOK, f.ov)
	})
	mux.HandleFunc("GET /v1/test/cladnet/big", js(operator.TestRuns{CladnetID: "cnbig", Runs: []operator.TestRunSummary{
		{RunID: "run2", Pairs: 132, MeasuredPairs: 131, StartedAt: time.Now()}, {RunID: "run1", Pairs: 132, MeasuredPairs: 132, StartedAt: time.Now().Add(-time.Hour)}}}))
	mux.HandleFunc("GET /v1/test/cladnet/big/run/{id}", js(f.run))
	mux.HandleFunc("GET /v1/cladnet/big/rules", js(cost.DefaultRules("cnbig", "cost-prioritized")))
	mux.HandleFunc("PUT /v1/cladnet/big/rules", record(cost.DefaultRules("cnbig", "basic")))
	mux.HandleFunc("POST /v1/control/cladnet/big/command/{cmd}", record(operator.ControlResponse{IsSucceeded: true, Message: "ok", CommandType: "DOWN", Version: 7, Members: 150}))
	mux.HandleFunc("PUT /v1/cladnet/big", record(spec))
	mux.HandleFunc("DELETE /v1/cladnet/big", record(operator.DeletionResult{IsSucceeded: true, Message: "CLADNet big deleted", CLADNetSpecification: spec}))
	mux.HandleFunc("POST /v1/cladnet/big/revocation", record(map[string]any{"version": 2}))
	mux.HandleFunc("POST /v1/cladnet/big/token", record(operator.TokenResponse{Token: strings.Repeat("T", 200), HostName: "vm-new", NotAfter: time.Now().Add(time.Hour)}))
	return mux
}

func (f *fakeOperator) takeWrites() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

// TestPageLargeCLADNet loads the console against a fake operator with 150
// members and a 12-host run in headless Chromium: filtering, sorting, the
// 12×12 heatmap with an unmeasured pair, the barplot, confirmations that
// send nothing when cancelled, the layouts at 1400 and 420 px, no
// JavaScript error.
func TestPageLargeCLADNet(t *testing.T) {
	path := browser.Require(t)
	f := newFakeOperator()
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := browser.Start(t, ctx, path, browser.Options{})
	tab := b.Ctx
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return s
	}
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatal(err)
		}
	}
	rows := `[...document.querySelectorAll("#member-table tr[data-host]")].map(r => r.dataset.host).join(" ")`
	do(chromedp.Navigate(srv.URL + "/"))
	waitFor("150 rows", fmt.Sprintf(`document.querySelectorAll("#member-table tr[data-host]").length === %d`, fakeMembers))
	if got := eval(`document.querySelector("#member-count").textContent`); got != "(150 of 150: 75 up, 25 down, 25 lost, 25 revoked)" {
		t.Errorf("member count %q", got)
	}
	if got := eval(`String(document.querySelectorAll("#member-table tr.st-lost, #member-table tr.st-revoked").length)`); got != "50" {
		t.Errorf("%s greyed rows, want 50 (lost and revoked)", got)
	}

	// Filter by words, then by status.
	var want []string
	for i := 0; i < fakeMembers; i++ {
		if h := fmt.Sprintf("vm%d", i); strings.HasPrefix(h, "vm1") && i%3 == 1 { // vm1* on gcp
			want = append(want, h)
		}
	}
	sort.Slice(want, func(i, j int) bool { return natural(want[i], want[j]) })
	do(chromedp.SendKeys(chromedp.CSS("#member-filter"), "vm1 gcp"))
	waitFor("filtered", fmt.Sprintf(`document.querySelectorAll("#member-table tr[data-host]").length === %d`, len(want)))
	if got := eval(rows); got != strings.Join(want, " ") {
		t.Errorf("filter 'vm1 gcp': %q, want %q", got, strings.Join(want, " "))
	}
	setSelect := func(sel, v string) {
		t.Helper()
		do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(e => { e.value = %q; e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input")); })(document.querySelector(%q))`, v, sel)))
	}
	setSelect("#member-filter", "")
	setSelect("#member-status", "lost")
	waitFor("lost only", `document.querySelectorAll("#member-table tr[data-host]").length === 25 && [...document.querySelectorAll("#member-table tr[data-host]")].every(r => r.dataset.status === "lost")`)
	setSelect("#member-status", "")

	// Sort by tx: click once ascending, twice descending.
	do(chromedp.Click(chromedp.CSS(`#member-table th[data-sort="tx"] button`)))
	waitFor("tx ascending", `document.querySelector('#member-table th[data-sort="tx"]').getAttribute("aria-sort") === "ascending"`)
	if got := strings.Fields(eval(rows)); len(got) != fakeMembers || got[0] != "vm0" || got[149] != "vm149" {
		t.Errorf("by tx ascending: first %v last %v", got[:1], got[len(got)-1:])
	}
	do(chromedp.Click(chromedp.CSS(`#member-table th[data-sort="tx"] button`)))
	waitFor("tx descending", `document.querySelector('#member-table th[data-sort="tx"]').getAttribute("aria-sort") === "descending"`)
	if got := strings.Fields(eval(rows)); got[0] != "vm149" || got[149] != "vm0" {
		t.Errorf("by tx descending: first %v last %v", got[:1], got[len(got)-1:])
	}

	// The 12×12 heatmap: 132 pairs, one grey (not measured), its hover text.
	waitFor("heatmap", `document.querySelectorAll("#heatmap rect.cell").length === 132 && document.querySelectorAll("#heatmap rect.diag").length === 12`)
	if got := eval(`String([...document.querySelectorAll("#heatmap rect.cell")].filter(c => c.getAttribute("fill") === "#9e9e9e").length)`); got != "1" {
		t.Errorf("%s grey cells, want 1 (vm1 → vm2 not measured)", got)
	}
	if got := eval(`document.querySelector('#heatmap rect.cell[data-src="vm3"][data-dst="vm5"]').getAttribute("aria-label")`); got != "vm3 → vm5, min 8.00 ms · avg 8.50 ms · max 9.00 ms, loss 0% (3/3)" {
		t.Errorf("cell vm3 → vm5 label %q", got)
	}
	if got := eval(`String(document.querySelectorAll("#barplot path.bar").length)`); got != "11" {
		t.Errorf("barplot: %s bars, want 11", got)
	}
	do(chromedp.Click(chromedp.CSS(`#heatmap rect.cell[data-src="vm4"][data-dst="vm0"]`)))
	waitFor("barplot of vm4", `document.querySelector("#bar-host").selectedOptions[0].textContent === "vm4"`)

	// Confirmations: cancel sends nothing, confirm sends the command.
	do(chromedp.Click(chromedp.CSS("#btn-down")))
	waitFor("confirm open", `document.querySelector("#confirm").open`)
	do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	waitFor("confirm closed", `!document.querySelector("#confirm").open`)
	time.Sleep(200 * time.Millisecond)
	if w := f.takeWrites(); len(w) != 0 {
		t.Errorf("cancelled DOWN sent %q", w)
	}
	do(chromedp.Click(chromedp.CSS("#btn-down")))
	waitFor("confirm open", `document.querySelector("#confirm").open`)
	do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitFor("notice", `document.querySelector("#notice").textContent.startsWith("DOWN")`)
	if w := f.takeWrites(); len(w) != 1 || w[0] != "POST /v1/control/cladnet/big/command/DOWN" {
		t.Errorf("DOWN sent %q", w)
	}
	// Push rules: the dialog holds the rules in force, the push is confirmed.
	do(chromedp.Click(chromedp.CSS("#btn-rules")))
	waitFor("rules dialog", `document.querySelector("#rules-dialog").open && document.querySelector("#rules-text").value.includes("cost-prioritized")`)
	do(chromedp.SetValue(chromedp.CSS("#rules-text"), `{"ruleType":"basic"}`), chromedp.Click(chromedp.CSS("#rules-push")))
	waitFor("confirm open", `document.querySelector("#confirm").open`)
	do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitFor("notice", `document.querySelector("#notice").textContent.startsWith("rules version")`)
	if w := f.takeWrites(); len(w) != 1 || w[0] != `PUT /v1/cladnet/big/rules {"ruleType":"basic"}` {
		t.Errorf("rules push sent %q", w)
	}
	// Revoke from a row.
	do(chromedp.Click(chromedp.CSS(`button[aria-label="Revoke vm7"]`)))
	waitFor("confirm open", `document.querySelector("#confirm").open`)
	do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitFor("notice", `document.querySelector("#notice").textContent.startsWith("revoked vm7")`)
	if w := f.takeWrites(); len(w) != 1 || !strings.HasPrefix(w[0], `POST /v1/cladnet/big/revocation {"peerId":"12D3KooWfake007"`) {
		t.Errorf("revoke sent %q", w)
	}

	// Edit: the dialog holds the spec, saving is confirmed.
	do(chromedp.Click(chromedp.CSS("#btn-edit")))
	waitFor("edit dialog", `document.querySelector("#edit-dialog").open && document.querySelector("#edit-desc").value === "150 members"`)
	do(chromedp.SetValue(chromedp.CSS("#edit-desc"), "renamed"), chromedp.Click(chromedp.CSS("#edit-save")))
	waitFor("confirm open", `document.querySelector("#confirm").open`)
	do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	waitFor("notice", `document.querySelector("#notice").textContent === "updated big"`)
	if w := f.takeWrites(); len(w) != 1 || w[0] != `PUT /v1/cladnet/big {"description":"renamed","ruleType":"cost-prioritized"}` {
		t.Errorf("edit sent %q", w)
	}
	// Dissolve: cancelled, nothing is sent.
	do(chromedp.Click(chromedp.CSS("#btn-dissolve")))
	waitFor("confirm open", `document.querySelector("#confirm").open && document.querySelector("#confirm-text").textContent.startsWith("Dissolve big?")`)
	do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#confirm").dispatchEvent(new Event("cancel"))`))
	waitFor("confirm closed", `!document.querySelector("#confirm").open`)
	time.Sleep(200 * time.Millisecond)
	if w := f.takeWrites(); len(w) != 0 {
		t.Errorf("cancelled dissolve sent %q", w)
	}

	// Layouts: two columns at 1400 px, one at 420 px with nothing wider
	// than the screen (tables scroll inside their box).
	if got := eval(`String(document.querySelector("#rtt").getBoundingClientRect().top === document.querySelector("#cost").getBoundingClientRect().top)`); got != "true" {
		t.Errorf("at 1400 px RTT and cost are not side by side")
	}
	dir := "artifacts"
	if err := b.Screenshot(filepath.Join(dir, "console-150-1400.png"), 1400); err != nil {
		t.Fatal(err)
	}
	if err := b.Screenshot(filepath.Join(dir, "console-150-420.png"), 420); err != nil {
		t.Fatal(err)
	}
	if got := eval(`String(document.documentElement.scrollWidth)`); got != "420" {
		t.Errorf("at 420 px the page is %s px wide", got)
	}
	if got := eval(`String(document.querySelector("#rtt").getBoundingClientRect().top < document.querySelector("#cost").getBoundingClientRect().top)`); got != "true" {
		t.Errorf("at 420 px RTT and cost are not stacked")
	}
	// Every control has an accessible name.
	if got := eval(`[...document.querySelectorAll("button, input, select, textarea")].filter(e => !(e.getAttribute("aria-label") || e.textContent.trim() || (e.labels && e.labels.length))).map(e => e.id || e.outerHTML.slice(0, 60)).join(", ")`); got != "" {
		t.Errorf("controls without an accessible name: %s", got)
	}
	for _, e := range b.Errors() {
		t.Errorf("JavaScript error: %s", e)
	}
}

// natural orders vm2 before vm10, as the page does.
func natural(a, b string) bool {
	na, nb := 0, 0
	fmt.Sscanf(strings.TrimPrefix(a, "vm"), "%d", &na)
	fmt.Sscanf(strings.TrimPrefix(b, "vm"), "%d", &nb)
	return na < nb
}

// TestPageBearerToken: against an operator that wants a bearer token, the
// page asks for one, keeps it in the tab and sends it with every call.
func TestPageBearerToken(t *testing.T) {
	path := browser.Require(t)
	f := newFakeOperator()
	inner := f.handler()
	var sawToken sync.Once
	got := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			if r.Header.Get("Authorization") != "Bearer t0ken" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cbnode operator"`)
				api.WriteError(w, http.StatusUnauthorized, fmt.Errorf("authentication required"))
				return
			}
			sawToken.Do(func() { close(got) })
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := browser.Start(t, ctx, path, browser.Options{})
	poll := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(b.Ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	poll("the credentials form", `!document.querySelector("#login").hidden`)
	if err := chromedp.Do(b.Ctx, chromedp.SendKeys(chromedp.CSS("#login-token"), "t0ken"), chromedp.Click(chromedp.CSS("#login-use"))); err != nil {
		t.Fatal(err)
	}
	poll("members after the token", fmt.Sprintf(`document.querySelectorAll("#member-table tr[data-host]").length === %d && document.querySelector("#login").hidden`, fakeMembers))
	select {
	case <-got:
	default:
		t.Error("no API call carried the token")
	}
	// The 401s before the token are the only errors the browser logs.
	for _, e := range b.Errors() {
		if !strings.Contains(e, "401") {
			t.Errorf("JavaScript error: %s", e)
		}
	}
}
