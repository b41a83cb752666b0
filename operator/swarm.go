package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/remote"
	"github.com/cloud-barista/cbnode/renew"
)

// OperatorHost is the host name of the certificate the operator signs for
// itself in each CLADNet (API-issued tokens may not take it). The
// certificate has role operator: members keep it out of their members
// table (no routing, no address, no name) and refuse it an overlay IP.
const OperatorHost = "operator"

// operatorCertTTL is the validity of the operator's own certificates; each
// start signs fresh ones.
const operatorCertTTL = 365 * 24 * time.Hour

// testsDir (under a CLADNet's directory) keeps the last test runs as JSON.
const testsDir = "tests"

// cladnetSwarm is the operator's part in one CLADNet: the owner, its
// membership (no overlay IP), its rules and its revocation list.
type cladnetSwarm struct {
	owner   *cladnet.Owner
	mem     *overlay.Membership
	rules   *overlay.Rules
	control *overlay.Control // data plane up/down, test requests
	tests   *testStore       // the last connectivity test runs
	// detailsSeq numbers the details documents signed for members.
	detailsSeq remote.Sequencer
	revs       *overlay.Revocations
	intro      *overlay.Introducer
	watch      *watch // what the console shows: gone members, paths, cost, events
}

// close leaves the CLADNet's gossip (the members drop the operator at once).
func (s *cladnetSwarm) close() {
	if s.watch != nil {
		s.watch.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = s.mem.Leave(ctx)
	cancel()
	s.intro.Close()
	s.rules.Close()
	s.control.Close()
	s.revs.Close()
}

// startSwarm starts the operator's libp2p node (a DHT client with
// gossipsub; its key in Dir/.operator).
func (o *Operator) startSwarm() error {
	key, err := node.LoadOrCreateKey(filepath.Join(o.cfg.Dir, operatorDir))
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	o.key = key
	o.adm = overlay.NewAdmission()
	o.adm.Bind(func(p peer.ID) bool {
		for _, b := range o.boot { // they hold the revocation lists
			if b.ID == p {
				return true
			}
		}
		known := false
		o.gossipers.Range(func(k, _ any) bool {
			known = k.(*overlay.Membership).Known(p)
			return !known
		})
		return known
	})
	o.node, err = node.New(o.base, node.Config{
		Key: key, ListenIPs: o.cfg.ListenIPs, Port: o.cfg.Port, Bootstrap: o.boot, PubSub: true,
		PubSubOptions: o.adm.PubSubOptions(),
		// Claims of every CLADNet pass through (a DHT client stores
		// none): check their signatures only.
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator().WithUnknown()},
		Logger:     o.log,
	})
	if err != nil {
		return fmt.Errorf("operator: libp2p node: %w", err)
	}
	o.node.Host.SetStreamHandler(overlay.TestResultProtocol, o.handleTestRow)
	renew.Serve(o.node.Host, o.renewCert)
	return nil
}

// join takes part in ow's gossip. The caller holds o.mu (or is Start).
func (o *Operator) join(ow *cladnet.Owner) error {
	self := o.node.Host.ID()
	cert, err := cladnet.SignCertificate(ow.Key, ow.Spec, self, OperatorHost, nil, time.Now(), operatorCertTTL, cladnet.WithRole(cladnet.RoleOperator))
	if err != nil {
		return fmt.Errorf("CLADNet %s: operator certificate: %w", ow.Spec.Name, err)
	}
	log := o.log.With("cladnet", ow.Spec.Name)
	// The list in DIR (written by Owner.Revoke) is the one in force.
	revs, err := overlay.StartRevocations(o.base, ow.Spec, o.node, o.store.cladnetDir(ow), log)
	if err != nil {
		return fmt.Errorf("CLADNet %s: %w", ow.Spec.Name, err)
	}
	var intro atomic.Pointer[overlay.Introducer] // started once the membership runs
	mem, err := overlay.StartMembership(o.base, overlay.MembershipConfig{
		Spec: ow.Spec, Cert: cert, Key: o.key, Node: o.node,
		Heartbeat: o.cfg.Heartbeat, MissedHeartbeats: o.cfg.MissedHeartbeats, Logger: log,
		Revoked: revs.RevokedCert,
		OnPeerJoin: func(p peer.ID) {
			if in := intro.Load(); in != nil {
				in.Introduce(p)
			}
		},
	})
	if err != nil {
		revs.Close()
		return fmt.Errorf("CLADNet %s: %w", ow.Spec.Name, err)
	}
	rules, err := overlay.StartRules(o.base, ow.Spec, o.node, o.store.cladnetDir(ow), log)
	if err != nil {
		mem.Close()
		revs.Close()
		return fmt.Errorf("CLADNet %s: %w", ow.Spec.Name, err)
	}
	control, err := overlay.StartControl(o.base, ow.Spec, o.node, o.store.cladnetDir(ow), o.log.With("cladnet", ow.Spec.Name))
	if err != nil {
		rules.Close()
		mem.Close()
		revs.Close()
		return fmt.Errorf("CLADNet %s: %w", ow.Spec.Name, err)
	}
	revs.SetAdmission(o.adm)
	rules.SetAdmission(o.adm)
	control.SetAdmission(o.adm)
	intro.Store(overlay.StartIntroducer(o.base, overlay.IntroducerConfig{
		Host: o.node.Host, Spec: ow.Spec, Cert: mem.Cert, Revoked: revs.RevokedCert, Admission: o.adm, Logger: log,
	}))
	o.gossipers.Store(mem, struct{}{})
	s := &cladnetSwarm{owner: ow, mem: mem, rules: rules, control: control, revs: revs, intro: intro.Load(),
		tests: loadTests(filepath.Join(o.store.cladnetDir(ow), testsDir))}
	s.watch = o.startWatch(s)
	o.swarm[ow.Spec.Name] = s
	return nil
}

// lookup finds a CLADNet by ID or name. The caller holds o.mu.
func (o *Operator) lookup(key string) (*cladnetSwarm, error) {
	if s, ok := o.swarm[key]; ok {
		return s, nil
	}
	for _, s := range o.swarm {
		if s.owner.Spec.ID == key {
			return s, nil
		}
	}
	return nil, fmt.Errorf("CLADNet %q is not held by this operator (GET /v1/cladnet lists them): %w", key, api.ErrNotFound)
}

// sorted returns the CLADNets by name. The caller holds o.mu.
func (o *Operator) sorted() []*cladnetSwarm {
	out := make([]*cladnetSwarm, 0, len(o.swarm))
	for _, s := range o.swarm {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].owner.Spec.Name < out[j].owner.Spec.Name })
	return out
}

// signRules signs r with the owner key and submits it: applied here,
// gossiped to every member.
func (s *cladnetSwarm) signRules(ctx context.Context, r *cost.Rules) (*cost.Rules, error) {
	if err := cost.SignRules(s.owner.Key, r); err != nil {
		return nil, fmt.Errorf("%v: %w", err, api.ErrBadInput)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	doc, err := s.rules.Submit(ctx, b)
	if err != nil {
		if doc != nil { // applied, but the gossip failed: members get it on the next join
			return doc, nil
		}
		return nil, fmt.Errorf("%v: %w", err, api.ErrConflict)
	}
	return doc, nil
}

// nextVersion is the version of a new rules document: now's Unix seconds,
// or one more than the current version if that is not newer.
func (s *cladnetSwarm) nextVersion(now time.Time) uint64 {
	v := uint64(now.Unix())
	if cur := s.rules.Current(); cur != nil && cur.Version >= v {
		v = cur.Version + 1
	}
	return v
}

// peers is the members table as api.Peer rows, without the operator.
// peers lists the members, and the revoked nodes with state "revoked" (the
// members dropped them; the operator keeps showing them, so a revoked node
// does not just vanish).
func (s *cladnetSwarm) peers() []api.Peer {
	out := []api.Peer{}
	for _, m := range s.mem.Members() {
		if m.Self {
			continue
		}
		out = append(out, s.toPeer(m))
	}
	if list := s.revs.Current(); list != nil {
		for _, e := range list.Entries {
			out = append(out, api.Peer{CladnetID: s.owner.Spec.ID, HostID: e.PeerID, HostName: e.HostName,
				State: api.StateRevoked, Details: cost.CloudInfo{}, LastSeen: e.RevokedAt.UTC(), FirstSeen: e.RevokedAt.UTC()})
		}
	}
	return out
}

func (s *cladnetSwarm) toPeer(m overlay.Member) api.Peer {
	a := m.Ann
	p := api.Peer{
		CladnetID: s.owner.Spec.ID, HostID: m.ID.String(), HostName: a.HostName,
		IP: a.OverlayIP, State: a.State, Details: a.Cloud, Addrs: a.Addrs,
		FirstSeen: m.FirstSeen.UTC(), LastSeen: m.LastSeen.UTC(),
		HostPublicIP: a.Cloud.PublicIP,
	}
	if a.Cert != nil {
		p.Groups, p.CertUntil = a.Cert.Groups, a.Cert.NotAfter
	}
	if len(a.Cloud.PrivateIPs) > 0 {
		p.HostPrivateIP = a.Cloud.PrivateIPs[0]
	}
	if ip, err := netip.ParseAddr(a.OverlayIP); err == nil {
		if pfx, err := s.owner.Spec.Prefix(); err == nil {
			p.IPv4CIDR = netip.PrefixFrom(ip, pfx.Bits()).String()
		}
	}
	return p
}

// peer finds one member (not the operator) by peer ID, host name or
// overlay IP.
func (s *cladnetSwarm) peer(key string) (api.Peer, error) {
	m, err := s.mem.Find(key)
	if errors.Is(err, overlay.ErrAmbiguousName) {
		return api.Peer{}, fmt.Errorf("CLADNet %s: %w: %w", s.owner.Spec.Name, err, api.ErrConflict)
	}
	if err != nil || m.Self {
		return api.Peer{}, fmt.Errorf("peer %q is not a member of CLADNet %s (give a hostId, host name or overlay IP from GET .../peer): %w", key, s.owner.Spec.Name, api.ErrNotFound)
	}
	return s.toPeer(m), nil
}
