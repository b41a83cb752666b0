package tumblebug

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// State is what deploy remembers between runs (the state file, JSON): the
// CLADNet and bootstrap it set up for one infra, and the nodes it
// deployed, so that a later run revokes the nodes Tumblebug no longer
// lists. It holds no secret.
type State struct {
	Tumblebug string              `json:"tumblebug"`
	NS        string              `json:"ns"`
	Infra     string              `json:"infra"`
	CladnetID string              `json:"cladnetId,omitempty"`
	Cladnet   string              `json:"cladnet,omitempty"`
	Bootstrap []string            `json:"bootstrap,omitempty"`
	Nodes     map[string]Deployed `json:"nodes"`
	Revoked   map[string]Deployed `json:"revoked,omitempty"`
	Updated   time.Time           `json:"updated"`
}

// DefaultStateFile is where deploy keeps the state of ns/infra.
func DefaultStateFile(ns, infra string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no state directory (%v): give --state-file", err)
	}
	return filepath.Join(dir, "cbnode", "tumblebug", HostName(ns)+"_"+HostName(infra)+".json"), nil
}

// LoadState reads the state file; a missing file is an empty state.
func LoadState(path string) (*State, error) {
	st := &State{Nodes: map[string]Deployed{}, Revoked: map[string]Deployed{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state file %s is not JSON (%v): move it away to start over", path, err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]Deployed{}
	}
	if st.Revoked == nil {
		st.Revoked = map[string]Deployed{}
	}
	return st, nil
}

// Save writes the state file atomically (0600, its directory 0700).
func (st *State) Save(path string) error {
	st.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}
