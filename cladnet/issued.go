package cladnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// issuedFile, next to the spec, lists the certificates the owner issued.
const issuedFile = "issued.json"

// Issued is one certificate the owner issued.
type Issued struct {
	HostName string    `json:"hostName"`
	PeerID   string    `json:"peerId"`
	IssuedAt time.Time `json:"issuedAt"`
	NotAfter time.Time `json:"notAfter"`
	// Fingerprint is the certificate's (Certificate.Fingerprint); empty in
	// lists written before revocation existed.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// ErrHostTaken is returned by Record for a host name that a live
// certificate of another peer holds.
var ErrHostTaken = errors.New("host name already issued")

// IssuedList reads the certificates issued so far (none for a new CLADNet).
func (o *Owner) IssuedList(dir string) ([]Issued, error) {
	b, err := os.ReadFile(filepath.Join(dir, o.Spec.Name, issuedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: issued certificates: %w", o.Spec.Name, err)
	}
	var list []Issued
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("CLADNet %s: %s is corrupt: %w", o.Spec.Name, filepath.Join(dir, o.Spec.Name, issuedFile), err)
	}
	return list, nil
}

// CheckHost refuses a host name that a live certificate of another peer
// holds: two members with one name confuse every table and name lookup. The
// same peer may be issued again (renewal); an expired holder frees the name.
func (o *Owner) CheckHost(dir, host, peerID string, now time.Time) error {
	list, err := o.IssuedList(dir)
	if err != nil {
		return err
	}
	for _, is := range list {
		if is.HostName == host && is.PeerID != peerID && now.Before(is.NotAfter) {
			return fmt.Errorf("%w: %s is issued to peer %s until %s: choose another --host, or --replace to issue it to a new node anyway", ErrHostTaken, host, is.PeerID, is.NotAfter.Format(time.RFC3339))
		}
	}
	return nil
}

// Record adds c to the issued list, replacing earlier entries of its host
// name, and drops entries that expired.
func (o *Owner) Record(dir string, c *Certificate, now time.Time) error {
	list, err := o.IssuedList(dir)
	if err != nil {
		return err
	}
	out := []Issued{{HostName: c.HostName, PeerID: c.PeerID, IssuedAt: now.UTC(), NotAfter: c.NotAfter, Fingerprint: c.Fingerprint()}}
	for _, is := range list {
		if is.HostName != c.HostName && now.Before(is.NotAfter) {
			out = append(out, is)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HostName < out[j].HostName })
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, o.Spec.Name, issuedFile), append(b, '\n'), 0o600)
}
