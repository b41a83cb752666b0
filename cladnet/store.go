package cladnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// Owner is a CLADNet as its operator holds it: the spec and the private owner key.
type Owner struct {
	Spec *Spec
	Key  ed25519.PrivateKey
}

const (
	ownerKeyFile = "owner.key"
	specFile     = "spec.json"
	pemType      = "CBNODE CLADNET OWNER KEY"
)

// Create makes a new CLADNet in dir/<name>: a fresh owner key (0600) and the
// spec. It refuses to overwrite an existing CLADNet.
func Create(dir, name, cidr, ruleType, description string, now time.Time) (*Owner, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate owner key: %w", err)
	}
	spec, err := NewSpec(name, cidr, ruleType, description, pub, now)
	if err != nil {
		return nil, err
	}
	d := filepath.Join(dir, name)
	if _, err := os.Stat(d); err == nil {
		return nil, fmt.Errorf("CLADNet %s already exists in %s", name, d)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", d, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: priv.Seed()})
	if err := atomicfile.Write(filepath.Join(d, ownerKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	o := &Owner{Spec: spec, Key: priv}
	if err := o.saveSpec(dir); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Owner) saveSpec(dir string) error {
	b, err := json.MarshalIndent(o.Spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, o.Spec.Name, specFile), append(b, '\n'), 0o600)
}

// Load reads the CLADNet called name from dir.
func Load(dir, name string) (*Owner, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	d := filepath.Join(dir, name)
	sb, err := os.ReadFile(filepath.Join(d, specFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s (create it with 'cbnode cladnet create %s --dir %s')", ErrNotFound, name, dir, name, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(sb, &spec); err != nil {
		return nil, fmt.Errorf("CLADNet %s: spec %s: %w", name, filepath.Join(d, specFile), err)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(filepath.Join(d, ownerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: owner key: %w", name, err)
	}
	blk, _ := pem.Decode(kb)
	if blk == nil || blk.Type != pemType || len(blk.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("CLADNet %s: owner key file %s is not a cbnode owner key", name, filepath.Join(d, ownerKeyFile))
	}
	key := ed25519.NewKeyFromSeed(blk.Bytes)
	pub, _ := spec.OwnerPublicKey()
	if !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("CLADNet %s: owner key does not match the spec", name)
	}
	return &Owner{Spec: &spec, Key: key}, nil
}

// SaveSpec writes the (changed) spec back to dir/<name>/spec.json.
func (o *Owner) SaveSpec(dir string) error {
	if err := o.Spec.Validate(); err != nil {
		return err
	}
	return o.saveSpec(dir)
}
