package remote

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// Errors Verify and Guard.Accept can return; callers may test with errors.Is.
var (
	ErrDetailsBadSignature = errors.New("details document does not verify against the CLADNet owner key")
	ErrDetailsForeign      = errors.New("details document is for another CLADNet or another node")
	ErrDetailsReplayed     = errors.New("details document was already applied (its sequence is not newer than the last one)")
	ErrDetailsStale        = errors.New("details document is too old or from the future")
)

const detailsDomain = "cbnode-details-v1\n"

// MaxDetailsAge is how old (by IssuedAt) a details document may be when it
// arrives; MaxClockSkew how far in the future. The sequence refuses replays
// while the member keeps its state directory; the age bounds them when it
// lost it.
const (
	MaxDetailsAge = 10 * time.Minute
	MaxClockSkew  = 5 * time.Minute
)

// Details is an owner-signed patch of one member's cloud information: the
// operator signs it for PUT .../peer/{hostId}/details and hands it to that
// member, which merges it field by field (cost.CloudPatch).
type Details struct {
	CladnetID string          `json:"cladnetId"`
	PeerID    string          `json:"peerId"` // the member it is for
	Patch     cost.CloudPatch `json:"cloudInformation"`
	IssuedAt  time.Time       `json:"issuedAt"`
	// Seq grows with every document the owner signs for this member (the
	// operator uses Unix nanoseconds, bumped past the last one).
	Seq       uint64 `json:"seq"`
	Signature string `json:"signature,omitempty"`
}

func (d *Details) signedBytes() ([]byte, error) {
	body := *d
	body.Signature = ""
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("details: encode for signing: %w", err)
	}
	return append([]byte(detailsDomain), b...), nil
}

// Sign signs d with the CLADNet owner key. IssuedAt is stored in UTC,
// truncated to the second (a zero one becomes now).
func (d *Details) Sign(owner ed25519.PrivateKey) error {
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign details: owner key has %d bytes, want %d", len(owner), ed25519.PrivateKeySize)
	}
	if d.Seq == 0 {
		return errors.New("sign details: sequence 0 (use a growing sequence, e.g. Unix nanoseconds)")
	}
	if d.IssuedAt.IsZero() {
		d.IssuedAt = time.Now()
	}
	d.IssuedAt = d.IssuedAt.UTC().Truncate(time.Second)
	d.Signature = ""
	msg, err := d.signedBytes()
	if err != nil {
		return err
	}
	d.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(owner, msg))
	return nil
}

// Verify checks that d is signed by spec's owner, is for CLADNet spec and
// node self, and was issued within MaxDetailsAge of now.
func (d *Details) Verify(spec *cladnet.Spec, self peer.ID, now time.Time) error {
	if d.CladnetID != spec.ID {
		return fmt.Errorf("%w: CLADNet %s, this node is in %s", ErrDetailsForeign, d.CladnetID, spec.ID)
	}
	if d.PeerID != self.String() {
		return fmt.Errorf("%w: it is for peer %s, this node is %s", ErrDetailsForeign, d.PeerID, self)
	}
	pub, err := spec.OwnerPublicKey()
	if err != nil {
		return fmt.Errorf("verify details: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature)
	if err != nil || d.Signature == "" {
		return fmt.Errorf("%w: no base64 signature", ErrDetailsBadSignature)
	}
	msg, err := d.signedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return ErrDetailsBadSignature
	}
	if age := now.Sub(d.IssuedAt); age > MaxDetailsAge || age < -MaxClockSkew {
		return fmt.Errorf("%w: issued %s, now %s (check the clocks of the operator and this node)", ErrDetailsStale, d.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// seqFile, in the member's state directory, keeps the last applied
// sequence across restarts.
const seqFile = "details-seq.json"

// Guard refuses replays: it accepts each sequence once, in growing order,
// and keeps the last one in its directory.
type Guard struct {
	path string
	mu   sync.Mutex
	last uint64
}

// OpenGuard loads the last sequence from dir (none yet: 0). An unreadable
// file is an error: the caller decides whether to go on with 0 (the age
// limit still bounds replays).
func OpenGuard(dir string) (*Guard, error) {
	g := &Guard{path: filepath.Join(dir, seqFile)}
	b, err := os.ReadFile(g.path)
	if errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err == nil {
		var s struct {
			Last uint64 `json:"last"`
		}
		if err = json.Unmarshal(b, &s); err == nil {
			g.last = s.Last
			return g, nil
		}
	}
	return g, fmt.Errorf("details sequence %s: %w (delete it to start over; documents older than %s are refused anyway)", g.path, err, MaxDetailsAge)
}

// Accept records seq if it is newer than every sequence accepted so far.
func (g *Guard) Accept(seq uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if seq <= g.last {
		return fmt.Errorf("%w: sequence %d, last applied %d", ErrDetailsReplayed, seq, g.last)
	}
	b, _ := json.Marshal(struct {
		Last uint64 `json:"last"`
	}{seq})
	if err := atomicfile.Write(g.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("record details sequence: %w", err)
	}
	g.last = seq
	return nil
}

// Sequencer hands out growing sequences (Unix nanoseconds, bumped past the
// last one), so a restarted operator still issues newer ones. The zero
// value is ready.
type Sequencer struct {
	mu   sync.Mutex
	last uint64
}

// Next is a sequence greater than every earlier one.
func (s *Sequencer) Next(now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := uint64(now.UnixNano())
	if v <= s.last {
		v = s.last + 1
	}
	s.last = v
	return v
}
