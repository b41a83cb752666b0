package tumblebug

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloud-barista/cbnode/api"
)

// After the nodes: waiting for every member, the table, the operator check.

type report struct {
	status api.Status
	rule   api.NetworkingRule
}

// wait polls every deployed node until each is a member with an overlay
// IP and has a path to every other.
func (d *deployer) wait(ctx context.Context) {
	var hosts []string
	for _, n := range d.nodes {
		if _, failed := d.res.Failed[n.ID]; !failed {
			hosts = append(hosts, HostName(n.ID))
		}
	}
	start := time.Now()
	deadline := start.Add(d.Wait)
	d.logf("waiting for %d members (up to %s) ...", len(hosts), d.Wait)
	reports := map[string]report{}
	for {
		missing := d.collect(ctx, hosts, reports)
		if len(missing) == 0 {
			d.logf("all %d nodes are members (%.1f s)", len(hosts), time.Since(start).Seconds())
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.logf("WARNING: after %s: %s", d.Wait, strings.Join(missing, "; "))
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	for _, n := range d.nodes {
		r, ok := reports[n.ID]
		if !ok {
			continue
		}
		row := Row{Node: n.ID, Host: r.status.HostName, IP: r.status.IP}
		for _, pr := range r.rule.Rules {
			row.Paths = append(row.Paths, fmt.Sprintf("%s %s %s", pr.HostName, pr.PeerScope, firstOf(pr.SelectedIP, "-")))
		}
		sort.Strings(row.Paths)
		d.res.Rows = append(d.res.Rows, row)
	}
}

// collect refreshes the reports (one command to every node at once) and
// says what is still missing.
func (d *deployer) collect(ctx context.Context, hosts []string, reports map[string]report) []string {
	outs, errs, err := d.TB.RunAll(ctx, d.NS, d.Infra, d.Layout.ReportCommand())
	if err != nil {
		return []string{err.Error()}
	}
	var missing []string
	for _, n := range d.nodes {
		if _, failed := d.res.Failed[n.ID]; failed {
			continue
		}
		out, ok := outs[n.ID]
		if !ok {
			missing = append(missing, fmt.Sprintf("%s: %v", n.ID, firstErr(errs[n.ID], "no report")))
			continue
		}
		var r report
		_ = json.Unmarshal([]byte(outputValue(out, "status")), &r.status)
		_ = json.Unmarshal([]byte(outputValue(out, "rule")), &r.rule)
		reports[n.ID] = r
		if r.status.IP == "" || r.status.CladnetID != d.spec.ID {
			missing = append(missing, n.ID+": no overlay IP yet")
			continue
		}
		have := map[string]bool{}
		for _, pr := range r.rule.Rules {
			if pr.SelectedIP != "" {
				have[pr.HostName] = true
			}
		}
		var lack []string
		for _, h := range hosts {
			if h != HostName(n.ID) && !have[h] {
				lack = append(lack, h)
			}
		}
		if len(lack) > 0 {
			missing = append(missing, fmt.Sprintf("%s: no path yet to %s", n.ID, strings.Join(lack, ",")))
		}
	}
	return missing
}

func firstErr(err error, otherwise string) any {
	if err != nil {
		return err
	}
	return otherwise
}

func (d *deployer) table() {
	if len(d.res.Rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(d.Out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOST\tOVERLAY IP\tPATHS (host scope underlay-ip)")
	for _, r := range d.res.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Node, r.Host, firstOf(r.IP, "-"), strings.Join(r.Paths, ", "))
	}
	_ = tw.Flush()
}

// checkOperator warns when the operator does not see the members: it then
// cannot renew their certificates (valid --token-ttl) or list them.
func (d *deployer) checkOperator(ctx context.Context) {
	var ps api.Peers
	if err := d.Op.Do(ctx, http.MethodGet, "/v1/cladnet/"+url.PathEscape(d.spec.ID)+"/peer", nil, &ps); err != nil {
		d.logf("WARNING: operator peer list: %v", d.opErr(err))
		return
	}
	seen := 0
	for _, p := range ps.Peers {
		if p.State != api.StateRevoked {
			seen++
		}
	}
	if seen == 0 && len(d.res.Rows) > 0 {
		d.logf("WARNING: the operator sees none of the members: start it with --bootstrap %s so that it renews their certificates (they expire after %s) and lists them", strings.Join(d.bootAddr, ","), d.TokenTTL)
	} else {
		d.logf("operator sees %d members", seen)
	}
}
