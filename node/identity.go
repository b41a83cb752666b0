package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// KeyFile is the node key's file name inside a state directory.
const KeyFile = "node.key"

// LoadOrCreateKey returns the Ed25519 node key kept in dir, creating dir
// (0700) and the key (0600) on first use, so the peer ID survives restarts.
func LoadOrCreateKey(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	if err := SaveKey(dir, k); err != nil {
		return nil, err
	}
	return k, nil
}

// SaveKey stores k as dir's node key.
func SaveKey(dir string, k crypto.PrivKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal node key: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, KeyFile), b, 0o600)
}
