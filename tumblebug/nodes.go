package tumblebug

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Setting up the nodes: the bootstrap node first, then the others in
// parallel; on each, the actions its probe calls for.

func (d *deployer) deployNodes(ctx context.Context) error {
	var rest []Node
	for _, n := range d.nodes {
		if n.ID != d.boot.Node {
			rest = append(rest, n)
		}
	}
	total, done := len(d.nodes), 0
	finish := func(n Node, acts []Action, err error, start time.Time) {
		d.mu.Lock()
		done++
		label := fmt.Sprintf("[%d/%d] %s", done, total, n.ID)
		d.res.Changed[n.ID] = acts
		if err != nil {
			d.res.Failed[n.ID] = err
		}
		d.mu.Unlock()
		switch {
		case err != nil:
			d.logf("%s: FAILED: %v", label, err)
		case len(acts) == 0:
			d.logf("%s: up to date", label)
		case d.Plan:
			d.logf("%s: would %s", label, joinActs(acts))
		default:
			d.logf("%s: %s: done (%.1f s)", label, joinActs(acts), time.Since(start).Seconds())
		}
	}
	if d.boot.Node == "" {
		d.bootAddr = d.boot.Given
		d.st.Bootstrap = d.boot.Given
		d.logf("bootstrap: %s (given)", strings.Join(d.boot.Given, " "))
	} else {
		// The bootstrap node first: every env file names it.
		for _, n := range d.nodes {
			if n.ID == d.boot.Node {
				start := time.Now()
				acts, err := d.deployNode(ctx, n)
				finish(n, acts, err, start)
				if err != nil {
					return fmt.Errorf("bootstrap node %s: %w", n.ID, err)
				}
			}
		}
	}
	par := d.Parallel
	if par <= 0 {
		par = 4
	}
	if d.Plan {
		par = 1 // the printed commands stay in order
	}
	next := make(chan Node)
	var wg sync.WaitGroup
	for range min(par, max(len(rest), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				start := time.Now()
				acts, err := d.deployNode(ctx, n)
				finish(n, acts, err, start)
			}
		}()
	}
	for _, n := range rest {
		next <- n
	}
	close(next)
	wg.Wait()
	return nil
}

// record notes a deployed node in the state file.
func (d *deployer) record(id string, dep Deployed, keepPeer bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.st.Nodes[id]; keepPeer && ok && old.PeerID != "" {
		return nil
	}
	d.st.Nodes[id] = dep
	return d.st.Save(d.StateFile)
}

func joinActs(acts []Action) string {
	var s []string
	for _, a := range acts {
		s = append(s, string(a))
	}
	return strings.Join(s, ", ")
}

func (d *deployer) deployNode(ctx context.Context, n Node) ([]Action, error) {
	l := d.Layout
	host := HostName(n.ID)
	isBoot := n.ID == d.boot.Node
	if err := CheckArch(n, d.binArch); err != nil {
		return nil, err
	}
	out, err := d.TB.Run(ctx, d.NS, d.Infra, n.ID, l.ProbeCommand(!d.Plan))
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	p := ParseProbe(out)
	w := Want{BinSHA: d.binSHA, UnitSHA: d.unitSHA, CladnetID: d.spec.ID, Bootstrap: isBoot}
	if isBoot && l.Service == ServiceSystemd {
		w.BootUnitSHA = sha([]byte(l.BootstrapUnit(d.boot.IP, d.spec.OwnerKey)))
	}
	// The binary first: the bootstrap's key is made by it.
	if p.BinSHA != w.BinSHA {
		d.progress(n.ID, fmt.Sprintf("%s (%.1f MiB)", InstallBinary, float64(len(d.Binary))/(1<<20)))
		if _, err := d.send(ctx, n.ID, string(InstallBinary), "cbnode", d.Binary, false, l.InstallBinaryCommand()); err != nil {
			return []Action{InstallBinary}, fmt.Errorf("install binary: %w", err)
		}
	}
	// Every env file names the bootstrap node: its address is known once
	// it has a key.
	if isBoot {
		id := p.BootID
		if id == "" && !d.Plan {
			out, err := d.run(ctx, n.ID, "bootstrap key", l.KeyCommand(true))
			if err != nil {
				return []Action{InstallBinary}, fmt.Errorf("bootstrap key: %w", err)
			}
			id = outputValue(out, "peer")
		}
		if id == "" {
			id = "BOOTSTRAP-PEER-ID" // plan: made at apply
		}
		d.bootAddr = []string{bootstrapAddr(d.boot.IP, l.BootstrapPort, id)}
		d.res.Bootstrap, d.st.Bootstrap = d.bootAddr, d.bootAddr
		d.logf("bootstrap: %s on %s", d.bootAddr[0], n.ID)
	}
	env, err := EnvFile(d.spec.Name, d.facts[n.ID], d.bootAddr, l.Port, d.Env)
	if err != nil {
		return nil, err
	}
	w.EnvSHA = sha([]byte(env))
	acts := NodeActions(p, w)
	for _, a := range acts {
		if a != InstallBinary {
			d.progress(n.ID, string(a))
		}
		var err error
		switch a {
		case WriteUnit:
			if _, err = d.send(ctx, n.ID, string(a), "cbnode.service", []byte(d.Unit), false, ""); err == nil && isBoot {
				_, err = d.send(ctx, n.ID, string(a), "cbnode-bootstrap.service", []byte(l.BootstrapUnit(d.boot.IP, d.spec.OwnerKey)), false, "")
			}
			if err == nil {
				_, err = d.run(ctx, n.ID, string(a), l.WriteUnitCommand(isBoot))
			}
		case StartBootstrap:
			_, err = d.run(ctx, n.ID, string(a), l.StartBootstrapCommand(d.boot.IP, d.spec.OwnerKey))
		case WriteEnv:
			_, err = d.send(ctx, n.ID, string(a), "env", []byte(env), false, l.WriteEnvCommand())
		case IssueToken:
			err = d.token(ctx, n.ID, host)
		case StartService:
			_, err = d.run(ctx, n.ID, string(a), l.StartCommand())
		}
		if err != nil {
			return acts, fmt.Errorf("%s: %w", a, err)
		}
	}
	if !d.Plan {
		if err := d.record(n.ID, Deployed{Host: host, PeerID: p.PeerID}, true); err != nil {
			return acts, err
		}
	}
	return acts, nil
}

// progress tells that a step starts (apply only: plan prints the commands).
func (d *deployer) progress(node, what string) {
	if !d.Plan {
		d.logf("    %s: %s ...", node, what)
	}
}

// token makes sure the node has its key, then has the operator issue a
// certificate for it and delivers the token.
func (d *deployer) token(ctx context.Context, node, host string) error {
	out, err := d.run(ctx, node, "node key", d.Layout.KeyCommand(false))
	if err != nil {
		return fmt.Errorf("node key: %w", err)
	}
	peerID := outputValue(out, "peer")
	if peerID == "" && !d.Plan {
		return fmt.Errorf("node key: 'cbnode key' printed no peer ID: %q", out)
	}
	if err := d.issue(ctx, node, host, peerID); err != nil {
		return err
	}
	if !d.Plan {
		return d.record(node, Deployed{Host: host, PeerID: peerID}, false)
	}
	return nil
}

func bootstrapAddr(ip string, port int, id string) string {
	proto := "ip4"
	if strings.Contains(ip, ":") {
		proto = "ip6"
	}
	return fmt.Sprintf("/%s/%s/tcp/%d/p2p/%s", proto, ip, port, id)
}

// issue asks the operator for a token bound to the node's own key (the
// token carries no private key) and delivers it as a file.
func (d *deployer) issue(ctx context.Context, node, host, peerID string) error {
	if d.Plan {
		d.logf("    issue token: POST %s/v1/cladnet/%s/token {\"hostName\":%q,\"ttl\":%q,\"peerId\":\"<the node's>\",\"replace\":true}", d.OperatorURL, d.spec.ID, host, d.TokenTTL.String())
		_, err := d.send(ctx, node, "deliver token", "token", nil, true, d.Layout.WriteTokenCommand())
		return err
	}
	var tok struct {
		Token string `json:"token"`
	}
	body := map[string]any{"hostName": host, "ttl": d.TokenTTL.String(), "peerId": peerID, "replace": true}
	if err := d.Op.Do(ctx, http.MethodPost, "/v1/cladnet/"+url.PathEscape(d.spec.ID)+"/token", body, &tok); err != nil {
		return d.opErr(fmt.Errorf("token for %s: %w", host, err))
	}
	if _, err := d.send(ctx, node, "deliver token", "token", []byte(tok.Token+"\n"), true, d.Layout.WriteTokenCommand()); err != nil {
		return fmt.Errorf("deliver token: %w", err)
	}
	return nil
}
