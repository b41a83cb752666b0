package daemon

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// adoptTokenKey moves a join token's node key into the state directory at
// the first start (STATE/node.key, 0600), so the token — a bearer identity
// while it carries the key — need not be kept: the node then runs from its
// state directory like one whose key was born on the VM (cladnet issue
// --peer-id). It reports whether it wrote the key; failures are logged.
func adoptTokenKey(stateDir string, t *cladnet.Token, key crypto.PrivKey, log *slog.Logger) bool {
	if t == nil || t.NodeKey == "" || stateDir == "" {
		return false
	}
	path := filepath.Join(stateDir, node.KeyFile)
	if b, err := os.ReadFile(path); err == nil {
		if k, err := crypto.UnmarshalPrivateKey(b); err == nil && k.Equals(key) {
			return false // adopted before
		}
		log.Warn("the join token carries another node key than the state directory's: the token's (its certificate's) is used and replaces it", "file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("cannot read the node key in the state directory", "err", err)
	}
	if err := node.SaveKey(stateDir, key); err != nil {
		log.Warn("could not keep the token's node key in the state directory", "err", err)
		return false
	}
	log.Warn("the join token carries this node's private key: it is now kept in the state directory; delete the token (and next time issue it with 'cbnode key' + 'cladnet issue --peer-id', so no key travels)", "file", path)
	return true
}
