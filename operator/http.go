package operator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/console"
	"github.com/cloud-barista/cbnode/cost"
)

// routes is the operator's API: cb-network's CLADNet routes and cbnode's
// own (token, rules). Every route must be in api/openapi.json (the OpenAPI
// test checks each pattern registered here).
func (o *Operator) routes() *api.Mux {
	mux := api.NewMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, map[string]string{"status": "healthy", "version": api.Version, "role": "operator"})
	})
	mux.HandleFunc("GET /openapi.json", api.ServeOpenAPI)
	mux.HandleFunc("GET /v1/cladnet", o.listCladnets)
	mux.HandleFunc("POST /v1/cladnet", o.createCladnet)
	mux.HandleFunc("POST /v1/cladnet/availableIPv4AddressSpaces", o.addressSpaces)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}", o.getCladnet)
	mux.HandleFunc("PUT /v1/cladnet/{cladnetId}", o.updateCladnet)
	mux.HandleFunc("DELETE /v1/cladnet/{cladnetId}", o.deleteCladnet)
	mux.HandleFunc("POST /v1/cladnet/{cladnetId}/token", o.issueToken)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/rules", o.getRules)
	mux.HandleFunc("PUT /v1/cladnet/{cladnetId}/rules", o.putRules)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/revocation", o.getRevocations)
	mux.HandleFunc("POST /v1/cladnet/{cladnetId}/revocation", o.postRevocation)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer", o.listPeers)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer/{hostId}", o.getPeer)
	mux.HandleFunc("POST /v1/test/cladnet/{cladnetId}/type/{testType}", o.postTest)
	mux.HandleFunc("GET /v1/test/cladnet/{cladnetId}", o.listTests)
	mux.HandleFunc("GET /v1/test/cladnet/{cladnetId}/run/{runId}", o.getTest)
	mux.HandleFunc("GET /v1/control/cladnet/{cladnetId}/command/{commandType}", o.control)
	mux.HandleFunc("POST /v1/control/cladnet/{cladnetId}/command/{commandType}", o.control)
	mux.HandleFunc("PUT /v1/cladnet/{cladnetId}/peer/{hostId}/details", o.putDetails)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/peer/{hostId}/networkingRule", o.getNetworkingRule)
	mux.HandleFunc("GET /v1/cladnet/{cladnetId}/overview", o.getOverview)
	console.Register(mux)
	return mux
}

// Routes are the patterns ("METHOD /path") the operator serves.
func (o *Operator) Routes() []string { return o.routes().Patterns() }

func fail(w http.ResponseWriter, err error) { api.WriteError(w, api.StatusOf(err), err) }

func badInput(err error) error { return fmt.Errorf("%v: %w", err, api.ErrBadInput) }

func (o *Operator) listCladnets(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	out := CLADNetSpecifications{CLADNetSpecifications: []CLADNetSpecification{}}
	for _, s := range o.sorted() {
		out.CLADNetSpecifications = append(out.CLADNetSpecifications, specOf(s.owner.Spec))
	}
	o.mu.Unlock()
	api.WriteJSON(w, http.StatusOK, out)
}

func (o *Operator) getCladnet(w http.ResponseWriter, r *http.Request) {
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	api.WriteJSON(w, http.StatusOK, specOf(s.owner.Spec))
}

func (o *Operator) createCladnet(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	name := req.Name
	if name == "" { // cb-network clients may give only the ID
		name = firstNonEmpty(req.ID, req.OldID)
	}
	if name == "" {
		fail(w, badInput(errors.New(`body needs "name" (1-63 letters, digits, '.', '_' or '-')`)))
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, err := o.lookup(name); err == nil {
		fail(w, fmt.Errorf("CLADNet %s already exists (%s): choose another name: %w", name, s.owner.Spec.ID, api.ErrConflict))
		return
	}
	ow, err := o.store.create(createRequest{name: name, cidr: strings.TrimSpace(req.IPv4AddressSpace), ruleType: req.RuleType,
		description: req.Description, subnets: req.IPv4CIDRs, hosts: req.Hosts}, time.Now())
	if err != nil {
		fail(w, err)
		return
	}
	if err := o.join(ow); err != nil {
		// The CLADNet exists on disk and is taken up at the next start.
		o.log.Error("created CLADNet, but cannot take part in its gossip", "cladnet", name, "err", err)
		fail(w, fmt.Errorf("CLADNet %s was created, but the operator cannot join its gossip (restart the operator): %w", name, err))
		return
	}
	o.log.Info("created CLADNet", "cladnet", ow.Spec.Name, "id", ow.Spec.ID, "range", ow.Spec.CIDR, "ruleType", ow.Spec.RuleType)
	api.WriteJSON(w, http.StatusOK, specOf(ow.Spec))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func (o *Operator) updateCladnet(w http.ResponseWriter, r *http.Request) {
	var req UpdateRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	spec := s.owner.Spec
	for _, f := range []struct{ field, got, have string }{
		{"cladnetId", firstNonEmpty(req.ID, req.OldID), spec.ID}, {"name", req.Name, spec.Name},
		{"ipv4AddressSpace", req.IPv4AddressSpace, spec.CIDR}, {"ownerKey", req.OwnerKey, spec.OwnerKey},
	} {
		if f.got != "" && f.got != f.have {
			fail(w, badInput(fmt.Errorf("%s %q cannot be changed (it is %q): only description and ruleType can; create a new CLADNet for another range", f.field, f.got, f.have)))
			return
		}
	}
	if req.RuleType != "" && !cost.ValidRuleType(req.RuleType) {
		fail(w, badInput(fmt.Errorf("ruleType %q: want %q or %q", req.RuleType, cladnet.RuleBasic, cladnet.RuleCostPrioritized)))
		return
	}
	next := *spec
	if req.Description != nil {
		next.Description = *req.Description
	}
	if req.RuleType != "" {
		next.RuleType = req.RuleType
	}
	// Sign and spread a rule-type change first: if the gossip side fails,
	// the spec file is left as it was.
	if cur := s.rules.Current(); req.RuleType != "" && cur.RuleType != req.RuleType {
		doc := cur.Clone()
		doc.CladnetID, doc.RuleType, doc.Version, doc.IssuedAt, doc.Signature = spec.ID, req.RuleType, s.nextVersion(time.Now()), time.Now(), ""
		if _, err := s.signRules(r.Context(), doc); err != nil {
			fail(w, err)
			return
		}
		o.log.Info("rule type changed", "cladnet", spec.Name, "ruleType", req.RuleType, "rulesVersion", doc.Version)
	}
	updated := &cladnet.Owner{Spec: &next, Key: s.owner.Key}
	if err := updated.SaveSpec(o.cfg.Dir); err != nil {
		fail(w, err)
		return
	}
	s.owner.Spec.Description, s.owner.Spec.RuleType = next.Description, next.RuleType
	api.WriteJSON(w, http.StatusOK, specOf(&next))
}

func (o *Operator) deleteCladnet(w http.ResponseWriter, r *http.Request) {
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	// A signed dissolution first: every member leaves and removes its
	// device (it spreads by gossip and is kept in the archived directory).
	if err := s.dissolve(r.Context(), o.cfg.Dir); err != nil {
		fail(w, err)
		return
	}
	s.close()
	o.gossipers.Delete(s.mem)
	delete(o.swarm, s.owner.Spec.Name)
	to, err := o.store.archive(s.owner, time.Now())
	if err != nil {
		// Still on disk: take part again so the state stays consistent.
		if jerr := o.join(s.owner); jerr != nil {
			o.log.Error("rejoin after a failed delete", "cladnet", s.owner.Spec.Name, "err", jerr)
		}
		fail(w, err)
		return
	}
	o.log.Info("deleted CLADNet (archived)", "cladnet", s.owner.Spec.Name, "to", to)
	api.WriteJSON(w, http.StatusOK, DeletionResult{IsSucceeded: true, CLADNetSpecification: specOf(s.owner.Spec), ArchivedTo: to,
		Message: fmt.Sprintf("CLADNet %s deleted: its members were told to leave; its directory and owner key are archived in %s", s.owner.Spec.Name, to)})
}

func (o *Operator) addressSpaces(w http.ResponseWriter, r *http.Request) {
	var req api.AddressSpaceRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	res, err := api.ComputeAddressSpaces(req)
	if err != nil {
		fail(w, badInput(err))
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (o *Operator) issueToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	ttl := o.cfg.TokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			fail(w, badInput(fmt.Errorf("ttl %q: want a positive duration such as \"24h\" or \"90m\"", req.TTL)))
			return
		}
		ttl = d
	}
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	tok := &cladnet.Token{Spec: s.owner.Spec, Bootstrap: o.cfg.Bootstrap}
	var id peer.ID
	var err error
	if req.PeerID != "" {
		if id, err = peer.Decode(req.PeerID); err != nil {
			fail(w, badInput(fmt.Errorf("peerId %q is not a peer ID: give the ID 'cbnode key' prints on the node (12D3KooW...)", req.PeerID)))
			return
		}
	} else {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			fail(w, err)
			return
		}
		if err := tok.SetPrivateKey(k); err != nil {
			fail(w, err)
			return
		}
		id, _ = peer.IDFromPrivateKey(k)
	}
	host := req.HostName
	if host == "" {
		str := id.String()
		host = "node-" + strings.ToLower(str[len(str)-6:])
	}
	if strings.EqualFold(host, OperatorHost) {
		fail(w, badInput(fmt.Errorf("host name %q is the operator's own: choose another hostName", host)))
		return
	}
	if err := checkTokenRevoked(s, host, id, req.PeerID != ""); err != nil {
		fail(w, err)
		return
	}
	now := time.Now()
	if !req.Replace {
		if err := s.owner.CheckHost(o.cfg.Dir, host, id.String(), now); err != nil {
			if errors.Is(err, cladnet.ErrHostTaken) {
				err = fmt.Errorf("%v (or \"replace\": true): %w", err, api.ErrConflict)
			}
			fail(w, err)
			return
		}
	}
	if tok.Cert, err = cladnet.SignCertificate(s.owner.Key, s.owner.Spec, id, host, req.Groups, now, ttl); err != nil {
		fail(w, badInput(err))
		return
	}
	if err := s.owner.Record(o.cfg.Dir, tok.Cert, now); err != nil {
		fail(w, err)
		return
	}
	enc, err := tok.Encode()
	if err != nil {
		fail(w, err)
		return
	}
	o.log.Info("issued join token", "cladnet", s.owner.Spec.Name, "host", host, "peer", id, "notAfter", tok.Cert.NotAfter)
	api.WriteJSON(w, http.StatusOK, TokenResponse{Token: enc, CladnetID: s.owner.Spec.ID, HostName: host, PeerID: id.String(), NotAfter: tok.Cert.NotAfter})
}

func (o *Operator) getRules(w http.ResponseWriter, r *http.Request) {
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	api.WriteJSON(w, http.StatusOK, s.rules.Current())
}

// putRules signs a plain rules document ({"ruleType", "prices", "version"},
// as 'cbnode cladnet rules' reads it) and spreads it.
func (o *Operator) putRules(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cost.MaxRulesSize))
	if err != nil {
		fail(w, badInput(fmt.Errorf("read body: %w", err)))
		return
	}
	var ver struct {
		Version uint64 `json:"version"`
	}
	_ = json.Unmarshal(body, &ver)
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	now := time.Now()
	doc, err := cost.LoadRulesFile(body, s.owner.Spec.ID, now)
	if err != nil {
		fail(w, badInput(err))
		return
	}
	if ver.Version == 0 {
		doc.Version = s.nextVersion(now)
	}
	signed, err := s.signRules(r.Context(), doc)
	if err != nil {
		fail(w, err)
		return
	}
	if signed.RuleType != s.owner.Spec.RuleType {
		next := *s.owner.Spec
		next.RuleType = signed.RuleType
		if err := (&cladnet.Owner{Spec: &next, Key: s.owner.Key}).SaveSpec(o.cfg.Dir); err != nil {
			o.log.Warn("rules applied, but the spec keeps the old rule type", "cladnet", next.Name, "err", err)
		} else {
			s.owner.Spec.RuleType = next.RuleType
		}
	}
	o.log.Info("signed cost rules", "cladnet", s.owner.Spec.Name, "version", signed.Version, "ruleType", signed.RuleType)
	api.WriteJSON(w, http.StatusOK, signed)
}

func (o *Operator) listPeers(w http.ResponseWriter, r *http.Request) {
	s, ok := o.cladnetOf(w, r)
	if !ok {
		return
	}
	api.WriteJSON(w, http.StatusOK, Peers{Peers: s.peers()})
}

// getOverview is the console's view of one CLADNet (watch.go); ?paths=
// lists the members (peer IDs, comma-separated, or "all") whose path rows
// it carries: the rows grow with the square of the members.
func (o *Operator) getOverview(w http.ResponseWriter, r *http.Request) {
	s, ok := o.cladnetOf(w, r)
	if !ok {
		return
	}
	want := map[string]bool{}
	all := false
	for _, id := range strings.Split(r.URL.Query().Get("paths"), ",") {
		if id = strings.TrimSpace(id); id == "all" {
			all = true
		} else if id != "" {
			want[id] = true
		}
	}
	api.WriteJSON(w, http.StatusOK, s.watch.overview(time.Now(), want, all))
}

func (o *Operator) getPeer(w http.ResponseWriter, r *http.Request) {
	s, ok := o.cladnetOf(w, r)
	if !ok {
		return
	}
	p, err := s.peer(r.PathValue("hostId"))
	if err != nil {
		fail(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, p)
}

// cladnetOf finds the CLADNet the path names (by ID or name) and answers
// the error itself when there is none; the operator's lock is not held on
// return.
func (o *Operator) cladnetOf(w http.ResponseWriter, r *http.Request) (*cladnetSwarm, bool) {
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if ok {
		unlock()
	}
	return s, ok
}

// lockedCladnetOf is cladnetOf for handlers that change the CLADNet: on
// success the operator's lock is held until unlock.
func (o *Operator) lockedCladnetOf(w http.ResponseWriter, r *http.Request) (*cladnetSwarm, func(), bool) {
	o.mu.Lock()
	s, err := o.lookup(r.PathValue("cladnetId"))
	if err != nil {
		o.mu.Unlock()
		fail(w, err)
		return nil, nil, false
	}
	return s, o.mu.Unlock, true
}
