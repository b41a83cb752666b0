package operator

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
)

// Reserved names inside Dir.
const (
	archiveDir  = ".archive"
	operatorDir = ".operator"
)

// store is the CLADNets in one directory, as package cladnet keeps them
// (Dir/<name>/spec.json, owner.key, issued.json). The operator's mutex
// serialises every change.
type store struct {
	dir string
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("operator: CLADNet directory %s: %w", dir, err)
	}
	return &store{dir: dir}, nil
}

// list loads every CLADNet of the directory, sorted by name. Directories
// without a spec are skipped; a corrupt CLADNet is an error (the operator
// must not silently lose a key it holds).
func (s *store) list() ([]*cladnet.Owner, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("operator: read %s: %w", s.dir, err)
	}
	var out []*cladnet.Owner
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		o, err := cladnet.Load(s.dir, e.Name())
		if errors.Is(err, cladnet.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("operator: %w (fix or move away %s)", err, filepath.Join(s.dir, e.Name()))
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// createRequest is what create needs, already parsed.
type createRequest struct {
	name, cidr, ruleType, description string
	subnets                           []string
	hosts                             int
}

// create makes a new CLADNet after checking it against the others: the
// name is free, the range overlaps none of theirs. An empty cidr is
// recommended from the members' subnets and the other CLADNets' ranges. On
// failure nothing is left behind.
func (s *store) create(req createRequest, now time.Time) (*cladnet.Owner, error) {
	if err := cladnet.ValidateName(req.name); err != nil {
		return nil, fmt.Errorf("%v: %w", err, api.ErrBadInput)
	}
	if req.ruleType != "" && req.ruleType != cladnet.RuleBasic && req.ruleType != cladnet.RuleCostPrioritized {
		return nil, fmt.Errorf("ruleType %q: want %q or %q: %w", req.ruleType, cladnet.RuleBasic, cladnet.RuleCostPrioritized, api.ErrBadInput)
	}
	others, err := s.list()
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if o.Spec.Name == req.name || o.Spec.ID == req.name {
			return nil, fmt.Errorf("CLADNet %s already exists (%s): choose another name: %w", req.name, o.Spec.ID, api.ErrConflict)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, req.name)); err == nil {
		return nil, fmt.Errorf("%s already exists but holds no CLADNet: move it away or choose another name: %w", filepath.Join(s.dir, req.name), api.ErrConflict)
	}
	if req.cidr == "" {
		used := append([]string(nil), req.subnets...)
		for _, o := range others {
			used = append(used, o.Spec.CIDR)
		}
		res, err := api.ComputeAddressSpaces(api.AddressSpaceRequest{IPv4CIDRs: used, Hosts: req.hosts})
		if err != nil {
			return nil, fmt.Errorf("recommend an ipv4AddressSpace: %v: %w", err, api.ErrBadInput)
		}
		req.cidr = res.Recommended
	} else if len(req.subnets) > 0 || req.hosts != 0 {
		return nil, fmt.Errorf("ipv4Cidrs and hosts only apply with an empty ipv4AddressSpace (they ask for a recommendation): %w", api.ErrBadInput)
	}
	p, err := netip.ParsePrefix(req.cidr)
	if err != nil {
		return nil, fmt.Errorf("ipv4AddressSpace %q is not a CIDR (e.g. 10.77.0.0/24): %w", req.cidr, api.ErrBadInput)
	}
	if err := cladnet.ValidateRange(p); err != nil {
		return nil, fmt.Errorf("ipv4AddressSpace: %v: %w", err, api.ErrBadInput)
	}
	for _, o := range others {
		if q, err := o.Spec.Prefix(); err == nil && q.Overlaps(p) {
			return nil, fmt.Errorf("ipv4AddressSpace %s overlaps CLADNet %s (%s): choose another range, or leave it empty for a recommendation: %w", p, o.Spec.Name, q, api.ErrConflict)
		}
	}
	o, err := cladnet.Create(s.dir, req.name, p.String(), req.ruleType, req.description, now)
	if err != nil {
		// Create validates before it makes the directory; a failure after
		// that (disk full) must not leave half a CLADNet.
		_ = os.RemoveAll(filepath.Join(s.dir, req.name))
		return nil, err
	}
	return o, nil
}

// archive moves a CLADNet's directory, owner key included, to
// Dir/.archive/<name>-<time>: nothing is destroyed.
func (s *store) archive(o *cladnet.Owner, now time.Time) (string, error) {
	ad := filepath.Join(s.dir, archiveDir)
	if err := os.MkdirAll(ad, 0o700); err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	to := filepath.Join(ad, o.Spec.Name+"-"+now.UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(filepath.Join(s.dir, o.Spec.Name), to); err != nil {
		return "", fmt.Errorf("archive CLADNet %s: %w", o.Spec.Name, err)
	}
	return to, nil
}

// cladnetDir is where a CLADNet's files (and the operator's rules state
// for it) live.
func (s *store) cladnetDir(o *cladnet.Owner) string { return filepath.Join(s.dir, o.Spec.Name) }
