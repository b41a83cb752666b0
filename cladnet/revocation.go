package cladnet

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/internal/atomicfile"

	"github.com/cloud-barista/cbnode/internal/signedjson"
)

// RevocationsFile, next to the spec (and in every member's state directory),
// holds the newest signed revocation list.
const RevocationsFile = "revocations.json"

// Bounds of a revocation list on the wire.
const (
	MaxRevocationsSize    = 256 << 10
	MaxRevocationEntries  = 1024
	maxRevocationReasonSz = 200
)

// Revocation is one revoked node: by peer ID (every certificate of that node
// key) and, when known, by the fingerprint of one certificate.
type Revocation struct {
	PeerID      string    `json:"peerId,omitempty"`
	HostName    string    `json:"hostName,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	RevokedAt   time.Time `json:"revokedAt"`
}

// Revocations is the owner-signed, versioned revocation list of a CLADNet,
// like Nebula's certificate blocklist. A higher version supersedes a lower
// one; members keep and spread only the newest.
type Revocations struct {
	CladnetID string       `json:"cladnetId"`
	Version   uint64       `json:"version"`
	IssuedAt  time.Time    `json:"issuedAt"`
	Entries   []Revocation `json:"entries"`
	// Dissolved says the owner dissolved the CLADNet: every member leaves,
	// removes its device and exits. Omitted when false, so lists signed
	// before dissolution existed keep verifying.
	Dissolved bool   `json:"dissolved,omitempty"`
	Signature string `json:"signature,omitempty"`

	// raw is the list's JSON object exactly as decoded (compacted): it is
	// verified, and re-encoded, as those bytes (see Certificate.raw).
	raw []byte
}

// revocationsFields is Revocations without its JSON methods.
type revocationsFields Revocations

// UnmarshalJSON decodes a list and keeps its exact bytes.
func (r *Revocations) UnmarshalJSON(b []byte) error {
	var f revocationsFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	raw, err := signedjson.Compact(b)
	if err != nil {
		return err
	}
	*r = Revocations(f)
	r.raw = raw
	return nil
}

// MarshalJSON writes the list's exact bytes when it was decoded and no
// field was changed since, else its fields.
func (r Revocations) MarshalJSON() ([]byte, error) {
	if r.exact() {
		return r.raw, nil
	}
	f := revocationsFields(r)
	f.raw = nil
	return json.Marshal(f)
}

func (r *Revocations) exact() bool {
	if r.raw == nil {
		return false
	}
	f := revocationsFields(*r)
	f.raw = nil
	return signedjson.Equal(r.raw, &f)
}

// Errors Verify can return; callers may test with errors.Is.
var (
	ErrRevocationsUnsigned     = errors.New("revocation list is not signed")
	ErrRevocationsBadSignature = errors.New("revocation list signature does not verify against the CLADNet owner key")
	ErrRevocationsForeign      = errors.New("revocation list belongs to another CLADNet")
)

const revocationsDomain = "cbnode-revocations-v1\n"

// signedBytes is the domain tag and the compact JSON of every member but the
// signature: the exact members of a decoded list, else the fields.
func (r *Revocations) signedBytes() []byte {
	if r.exact() {
		if b, err := signedjson.Without(r.raw, "signature", true); err == nil {
			return append([]byte(revocationsDomain), b...)
		}
	}
	body := revocationsFields(*r)
	body.Signature = ""
	body.raw = nil
	b, _ := json.Marshal(body) // cannot fail: strings, numbers and times
	return append([]byte(revocationsDomain), b...)
}

// Validate checks the list's shape (not its signature).
func (r *Revocations) Validate() error {
	if err := checkID(r.CladnetID); err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if r.Version == 0 {
		return errors.New("revocation list: version must be at least 1")
	}
	if len(r.Entries) > MaxRevocationEntries {
		return fmt.Errorf("revocation list: %d entries, limit %d", len(r.Entries), MaxRevocationEntries)
	}
	for i, e := range r.Entries {
		if e.PeerID == "" && e.Fingerprint == "" {
			return fmt.Errorf("revocation list: entry %d names neither a peer ID nor a certificate fingerprint", i)
		}
		if e.PeerID != "" {
			if _, err := peer.Decode(e.PeerID); err != nil {
				return fmt.Errorf("revocation list: entry %d: peer ID %q: %v", i, e.PeerID, err)
			}
		}
		if e.Fingerprint != "" && !isHex64(e.Fingerprint) {
			return fmt.Errorf("revocation list: entry %d: fingerprint %q is not a hex SHA-256", i, e.Fingerprint)
		}
		if e.HostName != "" {
			if err := ValidateHostName(e.HostName); err != nil {
				return fmt.Errorf("revocation list: entry %d: %w", i, err)
			}
		}
		if len(e.Reason) > maxRevocationReasonSz {
			return fmt.Errorf("revocation list: entry %d: reason has %d bytes, limit %d", i, len(e.Reason), maxRevocationReasonSz)
		}
	}
	return nil
}

func checkID(id string) error {
	if len(id) != 18 || id[:2] != "cn" {
		return fmt.Errorf("CLADNet ID %q is not a cbnode CLADNet ID (cn + 16 characters)", id)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Sign validates r and signs it with the owner key. A zero IssuedAt is set
// to now; times are stored in UTC, truncated to the second.
func (r *Revocations) Sign(owner ed25519.PrivateKey) error {
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign revocation list: owner key has %d bytes, want %d", len(owner), ed25519.PrivateKeySize)
	}
	if r.IssuedAt.IsZero() {
		r.IssuedAt = time.Now()
	}
	r.IssuedAt = r.IssuedAt.UTC().Truncate(time.Second)
	for i := range r.Entries {
		r.Entries[i].RevokedAt = r.Entries[i].RevokedAt.UTC().Truncate(time.Second)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("sign %w", err)
	}
	r.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(owner, r.signedBytes()))
	return nil
}

// Verify checks that r belongs to the CLADNet of spec, is signed by its
// owner key and is well formed.
func (r *Revocations) Verify(spec *Spec) error {
	if r == nil {
		return errors.New("no revocation list")
	}
	if r.CladnetID != spec.ID {
		return fmt.Errorf("%w (%s, not %s)", ErrRevocationsForeign, r.CladnetID, spec.ID)
	}
	if r.Signature == "" {
		return fmt.Errorf("%w (version %d)", ErrRevocationsUnsigned, r.Version)
	}
	pub, err := spec.OwnerPublicKey()
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || !ed25519.Verify(pub, r.signedBytes(), sig) {
		return ErrRevocationsBadSignature
	}
	return r.Validate()
}

// ParseRevocations decodes a revocation list (size-bounded) and checks its
// shape; it does not verify the signature.
func ParseRevocations(b []byte) (*Revocations, error) {
	if len(b) > MaxRevocationsSize {
		return nil, fmt.Errorf("revocation list: %d bytes, limit %d", len(b), MaxRevocationsSize)
	}
	var r Revocations
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Marshal encodes the list as indented JSON with a trailing newline.
func (r *Revocations) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode revocation list: %w", err)
	}
	return append(b, '\n'), nil
}

// NewerRevocations reports whether a supersedes b: a higher version wins (nil
// b is superseded by any list; nil a supersedes nothing).
func NewerRevocations(a, b *Revocations) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	default:
		return a.Version > b.Version
	}
}

// RevokedPeer reports whether the list revokes node p (by peer ID).
func (r *Revocations) RevokedPeer(p peer.ID) bool {
	if r == nil || p == "" {
		return false
	}
	s := p.String()
	for _, e := range r.Entries {
		if e.PeerID == s {
			return true
		}
	}
	return false
}

// RevokedCert reports whether the list revokes certificate c: its peer or
// its fingerprint is listed.
func (r *Revocations) RevokedCert(c *Certificate) bool {
	if r == nil || c == nil {
		return false
	}
	fp := ""
	for _, e := range r.Entries {
		if e.PeerID != "" && e.PeerID == c.PeerID {
			return true
		}
		if e.Fingerprint != "" {
			if fp == "" {
				fp = c.Fingerprint()
			}
			if e.Fingerprint == fp {
				return true
			}
		}
	}
	return false
}

// Revocations reads the CLADNet's revocation list from dir (nil, no error,
// when none was written yet). It verifies the signature.
func (o *Owner) Revocations(dir string) (*Revocations, error) {
	p := filepath.Join(dir, o.Spec.Name, RevocationsFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: revocation list: %w", o.Spec.Name, err)
	}
	r, err := ParseRevocations(b)
	if err == nil {
		err = r.Verify(o.Spec)
	}
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: %s: %w (move the file away to start a new list)", o.Spec.Name, p, err)
	}
	return r, nil
}

// Dissolve signs a newer revocation list in dir that keeps every entry and
// says the CLADNet is dissolved; it returns the new list.
func (o *Owner) Dissolve(dir string, now time.Time) (*Revocations, error) {
	cur, err := o.Revocations(dir)
	if err != nil {
		return nil, err
	}
	next := &Revocations{CladnetID: o.Spec.ID, Version: 1, IssuedAt: now, Entries: []Revocation{}, Dissolved: true}
	if cur != nil {
		next.Version = cur.Version + 1
		next.Entries = append(next.Entries, cur.Entries...)
	}
	if err := next.Sign(o.Key); err != nil {
		return nil, err
	}
	b, err := next.Marshal()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, o.Spec.Name, RevocationsFile), b, 0o600); err != nil {
		return nil, err
	}
	return next, nil
}

// Revoke adds e to the CLADNet's revocation list in dir, bumps its version,
// signs it and writes it atomically; it returns the new list. Revoking what
// the list already names only bumps the version.
func (o *Owner) Revoke(dir string, e Revocation, now time.Time) (*Revocations, error) {
	cur, err := o.Revocations(dir)
	if err != nil {
		return nil, err
	}
	next := &Revocations{CladnetID: o.Spec.ID, Version: 1, IssuedAt: now}
	if cur != nil {
		next.Version = cur.Version + 1
		next.Entries = append(next.Entries, cur.Entries...)
		next.Dissolved = cur.Dissolved // a dissolution is final
	}
	if e.RevokedAt.IsZero() {
		e.RevokedAt = now
	}
	dup := false
	for _, x := range next.Entries {
		if x.PeerID == e.PeerID && x.Fingerprint == e.Fingerprint {
			dup = true
		}
	}
	if !dup {
		next.Entries = append(next.Entries, e)
	}
	if err := next.Sign(o.Key); err != nil {
		return nil, err
	}
	b, err := next.Marshal()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, o.Spec.Name, RevocationsFile), b, 0o600); err != nil {
		return nil, err
	}
	return next, nil
}
