package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// LeaseFile is the name of the file in an allocator's state directory that
// remembers the address it held last, so a restart (or a resumed VM) asks for
// the same address first.
const LeaseFile = "lease.json"

// maxLeaseFileSize bounds what loadLease reads.
const maxLeaseFileSize = 64 << 10

// leaseState is the persisted form of the node's last claim.
type leaseState struct {
	CladnetID string    `json:"cladnetId"`
	PeerID    string    `json:"peerId"`
	IP        string    `json:"ip"`
	ClaimedAt time.Time `json:"claimedAt"`
	Seq       uint64    `json:"seq"`
	Expires   time.Time `json:"expires"`
	Released  bool      `json:"released,omitempty"`
}

func leaseFromClaim(c *Claim) *leaseState {
	return &leaseState{
		CladnetID: c.CladnetID,
		PeerID:    c.PeerID,
		IP:        c.IP,
		ClaimedAt: c.ClaimedAt,
		Seq:       c.Seq,
		Expires:   c.Expires,
		Released:  c.Released,
	}
}

// addr returns the persisted address (invalid if unparsable).
func (l *leaseState) addr() netip.Addr {
	ip, err := netip.ParseAddr(l.IP)
	if err != nil {
		return netip.Addr{}
	}
	return ip
}

// live reports whether the persisted lease still runs at now and was not
// released: only then does a new claim keep its ClaimedAt.
func (l *leaseState) live(now time.Time) bool {
	return l != nil && !l.Released && now.Before(l.Expires)
}

// loadLease reads dir/lease.json. A missing file is (nil, nil).
func loadLease(dir string) (*leaseState, error) {
	path := filepath.Join(dir, LeaseFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLeaseFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", path, err)
	}
	if len(b) > maxLeaseFileSize {
		return nil, fmt.Errorf("lease file %s is too large", path)
	}
	var l leaseState
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("lease file %s is corrupt: %w", path, err)
	}
	return &l, nil
}

// saveLease writes dir/lease.json (0600), creating dir (0700) if needed.
func saveLease(dir string, l *leaseState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save lease: %w", err)
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save lease: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, LeaseFile), append(b, '\n'), 0o600)
}
