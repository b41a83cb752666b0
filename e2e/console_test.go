//go:build linux

package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/console"
	"github.com/cloud-barista/cbnode/internal/browser"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/operator"
)

// artifacts is where the browser tests leave their screenshots
// (gitignored).
const artifacts = "artifacts"

// TestConsoleBrowser drives the operator's console in headless Chromium,
// which runs inside the operator's namespace (it reaches the operator on
// that namespace's 127.0.0.1:7480 and nothing beyond the lab): create the
// CLADNet with a recommended range and issue the three tokens from the page,
// watch the members table list n1..n3 up, run a connectivity test from the
// button and compare the heatmap's 3×3 cells with the API's run, revoke n3
// from the page (it shows revoked and its traffic stops), kill n2 (it turns
// lost, greyed, with its last-seen time), with no JavaScript error on the
// way; screenshots at 1400 and 420 px go to e2e/artifacts/.
func TestConsoleBrowser(t *testing.T) {
	chromium := browser.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, wan, opHost := operatorLab(ctx, t, "cbui")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opProc, err := opHost.Host.Start(c.Bin, "operator", "--dir", filepath.Join(c.Dir, "operator"), "--bootstrap", c.BootAddr,
		"--log-level", "info")
	must(err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- operator log (tail):\n%s", tail(opProc.Output(), 8000))
		}
	})
	op := newOpClient(t, opHost.Host)
	waitOperator(t, op, opProc)
	var nodes []*cluster.Node
	for i, cloud := range [][]string{
		{"--provider", "aws", "--region", "us-east-1", "--zone", "us-east-1a", "--vpc", "vpc-a"},
		{"--provider", "aws", "--region", "us-east-1", "--zone", "us-east-1b", "--vpc", "vpc-a"},
		{"--provider", "gcp", "--region", "us-central1", "--zone", "us-central1-a", "--vpc", "net-1"},
	} {
		n, err := c.AddHost(fmt.Sprintf("n%d", i+1), wan, 11+i)
		must(err)
		n.Args = cloud
		nodes = append(nodes, n)
	}

	b := browser.Start(t, ctx, chromium, browser.Options{Netns: opHost.Host.Namespace(), Width: 1400, Height: 900})
	tab := b.Ctx
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		must(err)
		return s
	}
	// waitFor polls a JavaScript expression until it is true.
	waitFor := func(what, js string, within time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](js, chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
			t.Fatalf("%s: not within %s: %v (page says %q)", what, within, err, eval(`document.querySelector("#notice").textContent + " | " + document.querySelector("#live").textContent`))
		}
	}
	must(chromedp.Do(tab, chromedp.Navigate("http://"+operator.DefaultAddr+"/")))
	waitFor("the console loads", `document.querySelector("#live").textContent.startsWith("live") || document.querySelector("#cladnet-table tbody").textContent.includes("No CLADNet")`, 15*time.Second)

	// Create the CLADNet from the page, its range recommended from the
	// members' subnet.
	must(chromedp.Do(tab,
		chromedp.Click(chromedp.CSS("#create summary")),
		chromedp.SetValue(chromedp.CSS("#create-name"), "lab"),
		chromedp.SetValue(chromedp.CSS("#create-subnets"), wanNet.String()),
		chromedp.SetValue(chromedp.CSS("#create-hosts"), "10"),
		chromedp.Click(chromedp.CSS("#recommend")),
	))
	waitFor("a recommended range", `document.querySelector("#create-cidr").value !== ""`, 10*time.Second)
	rec := eval(`document.querySelector("#create-cidr").value`)
	p, err := netip.ParsePrefix(rec)
	if err != nil || p.Overlaps(wanNet) {
		t.Fatalf("recommended range %q: %v, or it overlaps the members' subnet %s", rec, err, wanNet)
	}
	must(chromedp.Do(tab, chromedp.Click(chromedp.CSS("#create-submit"))))
	waitFor("the CLADNet is listed", `!!document.querySelector('#cladnet-table tr[data-cladnet="lab"]') && !document.querySelector("#members").hidden`, 15*time.Second)
	var spec api.CLADNetSpecification
	op.must(http.StatusOK, "GET", "/v1/cladnet/lab", nil, &spec)
	if spec.IPv4AddressSpace != rec {
		t.Fatalf("CLADNet created from the page: %+v, want range %s", spec, rec)
	}
	t.Logf("created from the page: CLADNet lab %s, range %s (recommended from %s)", spec.ID, rec, wanNet)

	// One token per member from the page: shown once, then gone.
	for _, n := range nodes {
		must(chromedp.Do(tab,
			chromedp.Click(chromedp.CSS("#btn-token")),
			chromedp.SetValue(chromedp.CSS("#token-host"), n.Name),
			chromedp.SetValue(chromedp.CSS("#token-ttl"), "1h"),
			chromedp.Click(chromedp.CSS("#token-issue")),
		))
		waitFor("token for "+n.Name, `document.querySelector("#token-value").value.length > 100`, 10*time.Second)
		tok := eval(`document.querySelector("#token-value").value`)
		must(chromedp.Do(tab, chromedp.Click(chromedp.CSS("#token-close"))))
		if left := eval(`document.querySelector("#token-value").value`); left != "" {
			t.Errorf("the token stays in the page after Close: %.20q...", left)
		}
		n.TokenFile = filepath.Join(c.Dir, n.Name+".token")
		must(os.WriteFile(n.TokenFile, []byte(strings.TrimSpace(tok)), 0o600))
		c.Nodes = append(c.Nodes, n)
	}
	started := time.Now()
	must(c.StartAll())
	membersConverge(t, c, 60*time.Second)
	addr := ips(t, c)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// The members table lists the three, up, with their overlay IPs.
	rowStatus := func(host string) string {
		return fmt.Sprintf(`(document.querySelector('#member-table tr[data-host="%s"]') || {dataset: {}}).dataset.status`, host)
	}
	waitFor("n1, n2, n3 up in the members table", fmt.Sprintf(`document.querySelectorAll("#member-table tr[data-host]").length === 3 && %s === "up" && %s === "up" && %s === "up"`,
		rowStatus("n1"), rowStatus("n2"), rowStatus("n3")), 30*time.Second)
	for _, n := range nodes {
		if got := eval(fmt.Sprintf(`document.querySelector('#member-table tr[data-host="%s"] td').textContent`, n.Name)); got != addr[n].String() {
			t.Errorf("members table: %s has overlay IP %q, want %s", n.Name, got, addr[n])
		}
	}
	t.Logf("members table: n1, n2, n3 up %s after the members started", ms(time.Since(started)))
	if _, err := waitPings(pairsOf(c.Nodes), addr, true, time.Now(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Paths and traffic reach the table (the pings above were traffic).
	waitFor("paths and traffic of n1", `(() => { const r = document.querySelector('#member-table tr[data-host="n1"]'); return r && /2 direct/.test(r.textContent) && r.querySelector('td[data-col="tx"]').textContent !== "0 B"; })()`, 15*time.Second)
	// Open n1's path table: a row per peer, direct, with its transport and traffic.
	must(chromedp.Do(tab, chromedp.Click(chromedp.CSS(`button[aria-label="Paths of n1 to each peer"]`))))
	waitFor("n1's path table", `document.querySelectorAll('table[aria-label="Paths of n1"] tbody tr').length === 2`, 10*time.Second)
	if got := eval(`[...document.querySelectorAll('table[aria-label="Paths of n1"] tbody tr')].map(r => [...r.cells].slice(0, 3).map(c => c.textContent).join("/")).join(" ")`); !strings.Contains(got, "n2/direct/") || !strings.Contains(got, "n3/direct/") {
		t.Errorf("n1's path table: %q, want n2 and n3 direct", got)
	}

	// Run a connectivity test from the button: the heatmap shows the run
	// the API keeps, cell by cell.
	must(chromedp.Do(tab, chromedp.SetValue(chromedp.CSS("#trials"), "3"), chromedp.Click(chromedp.CSS("#run-test"))))
	waitFor("the heatmap", `document.querySelectorAll("#heatmap rect.cell").length === 6 && !document.querySelector("#run-test").disabled`, 60*time.Second)
	var runs operator.TestRuns
	op.must(http.StatusOK, "GET", "/v1/test/cladnet/lab", nil, &runs)
	if len(runs.Runs) != 1 {
		t.Fatalf("test runs after one click: %+v", runs.Runs)
	}
	var run operator.TestResult
	op.must(http.StatusOK, "GET", "/v1/test/cladnet/lab/run/"+runs.Runs[0].RunID, nil, &run)
	if n := eval(`String(document.querySelectorAll("#heatmap rect.cell, #heatmap rect.diag").length)`); n != "9" {
		t.Errorf("heatmap has %s cells, want 3×3", n)
	}
	for _, s := range run.Results.InterHostNetworkStatus {
		cell := fmt.Sprintf(`document.querySelector('#heatmap rect.cell[data-src="%s"][data-dst="%s"]')`, s.SourceName, s.DestinationName)
		got := eval(fmt.Sprintf(`(c => c ? [c.dataset.avg, c.dataset.min, c.dataset.max, c.dataset.loss, c.getAttribute("fill")].join(" ") : "missing")(%s)`, cell))
		f := strings.Fields(got)
		if !s.Measured || len(f) != 5 || !sameNumber(f[0], s.AvgRTTMs) || !sameNumber(f[1], s.MinRTTMs) || !sameNumber(f[2], s.MaxRTTMs) || !sameNumber(f[3], s.LossPercent) || f[4] == "#9e9e9e" {
			t.Errorf("heatmap cell %s → %s: %q, want avg/min/max/loss %v/%v/%v/%v from the API, coloured", s.SourceName, s.DestinationName, got, s.AvgRTTMs, s.MinRTTMs, s.MaxRTTMs, s.LossPercent)
		}
	}
	if bars := eval(`String(document.querySelectorAll("#barplot path.bar").length)`); bars != "2" {
		t.Errorf("circular barplot of %s has %s bars, want 2", run.Hosts[0].HostName, bars)
	}
	if href := eval(`document.querySelector("#csv").getAttribute("href")`); !strings.HasSuffix(href, run.RunID+"?format=csv") {
		t.Errorf("CSV link %q", href)
	}
	t.Logf("heatmap: 3×3, the 6 pairs as GET .../run/%s (%s)\n%s", run.RunID, run.Message, matrixTable(run))

	// Each member keeps its own read-only page on its local API: a browser
	// in n1's namespace sees n1's members table, its paths and its spend.
	mb := browser.Start(t, ctx, chromium, browser.Options{Netns: n1.Host.Namespace(), Width: 1400, Height: 900})
	must(chromedp.Do(mb.Ctx, chromedp.Navigate("http://"+api.DefaultAddr+"/")))
	if _, err := chromedp.Run(mb.Ctx, chromedp.Poll[bool](`document.querySelectorAll("#peers tr[data-host]").length === 3 && /direct/.test(document.querySelector('#peers tr[data-host="n2"]').textContent) && document.querySelector("#cost").textContent.startsWith("Sent")`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("n1's own page: %v", err)
	}
	if s, err := chromedp.Run(mb.Ctx, chromedp.Evaluate[string](`document.body.textContent`)); err != nil || !strings.Contains(s, "read-only") || strings.Contains(s, "revoke") {
		t.Errorf("n1's page is not a read-only view: %v %.200q", err, s)
	}
	must(os.MkdirAll(artifacts, 0o755))
	must(mb.Screenshot(filepath.Join(artifacts, "member-n1-1400.png"), 1400))
	for _, e := range mb.Errors() {
		t.Errorf("JavaScript error on n1's page: %s", e)
	}

	shot1400, shot420 := filepath.Join(artifacts, "console-1400.png"), filepath.Join(artifacts, "console-420.png")
	must(b.Screenshot(shot1400, 1400))
	must(b.Screenshot(shot420, 420))
	must(chromedp.Do(tab, chromedp.EmulateViewport(1400, 900)))
	// At phone width nothing is wider than the screen but the tables, which scroll.
	t.Logf("screenshots: e2e/%s, e2e/%s; page weight %.1f KiB", shot1400, shot420, float64(console.Weight())/1024)

	// DOWN from the page (confirmed): overlay traffic stops, the page shows
	// the data plane and every member down; UP brings both back.
	for _, step := range []struct {
		button, plane, status string
		flowing               bool
	}{{"#btn-down", "down", "down", false}, {"#btn-up", "up", "up", true}} {
		t0 := time.Now()
		must(chromedp.Do(tab, chromedp.Click(chromedp.CSS(step.button))))
		waitFor("the confirmation", `document.querySelector("#confirm").open`, 5*time.Second)
		must(chromedp.Do(tab, chromedp.Click(chromedp.CSS("#confirm-ok"))))
		took, err := waitPings(pairsOf(c.Nodes), addr, step.flowing, t0, 15*time.Second)
		must(err)
		waitFor("data plane "+step.plane+" on the page", fmt.Sprintf(`document.querySelector("#ov-plane").textContent === %q && %s === %q && %s === %q && %s === %q`,
			step.plane, rowStatus("n1"), step.status, rowStatus("n2"), step.status, rowStatus("n3"), step.status), 15*time.Second)
		t.Logf("%s from the page: overlay traffic %s on every pair %s after the click", strings.ToUpper(step.plane), map[bool]string{true: "flowing", false: "stopped"}[step.flowing], ms(took))
	}

	// Revoke n3 from the page: confirmed, shown as revoked, its traffic stops.
	must(chromedp.Do(tab, chromedp.Click(chromedp.CSS(`button[aria-label="Revoke n3"]`))))
	waitFor("the confirmation", `document.querySelector("#confirm").open`, 5*time.Second)
	t0 := time.Now()
	must(chromedp.Do(tab, chromedp.Click(chromedp.CSS("#confirm-ok"))))
	waitFor("n3 revoked in the table", rowStatus("n3")+` === "revoked"`, 15*time.Second)
	t.Logf("n3 shows revoked %s after the click", ms(time.Since(t0)))
	cut, err := waitPings([]pair{{n3, n1}, {n3, n2}, {n1, n3}, {n2, n3}}, addr, false, t0, 10*time.Second)
	must(err)
	t.Logf("n3's traffic stopped both ways %s after the click", ms(cut))
	if _, err := waitPings([]pair{{n1, n2}, {n2, n1}}, addr, true, time.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// Kill n2: it turns lost (greyed, with its last-seen time) and stays.
	t1 := time.Now()
	must(n2.Proc.Kill())
	waitFor("n2 lost", rowStatus("n2")+` === "lost"`, 30*time.Second)
	t.Logf("n2 shows lost %s after SIGKILL (the members' failure detector; operator flags at their defaults)", ms(time.Since(t1)))
	row := eval(`document.querySelector('#member-table tr[data-host="n2"]').className + " | " + document.querySelector('#member-table tr[data-host="n2"]').textContent`)
	if !strings.Contains(row, "st-lost") || !strings.Contains(row, "ago") {
		t.Errorf("n2's row: %q, want greyed (st-lost) with when it was last seen", row)
	}
	if ev := eval(`[...document.querySelectorAll("#event-list li")].map(l => l.dataset.kind).join(" ")`); !strings.Contains(ev, "lost") || !strings.Contains(ev, "revoked") || !strings.Contains(ev, "join") || !strings.Contains(ev, "test") {
		t.Errorf("events: %q, want join, test, revoked and lost", ev)
	}
	must(b.Screenshot(filepath.Join(artifacts, "console-after-1400.png"), 1400))
	for _, e := range b.Errors() {
		t.Errorf("JavaScript error: %s", e)
	}
}

// sameNumber compares a number the page shows with the API's.
func sameNumber(s string, want float64) bool {
	v, err := strconv.ParseFloat(s, 64)
	return err == nil && math.Abs(v-want) <= 1e-9*math.Max(1, math.Abs(want))
}
