package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// M5: the key a join token carries moves into the state directory at the
// first start (0600), once; a token without a key leaves it alone.
func TestAdoptTokenKey(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	tok := &cladnet.Token{}
	if adoptTokenKey(dir, tok, k, log) {
		t.Fatal("adopted a key from a token without one")
	}
	if err := tok.SetPrivateKey(k); err != nil {
		t.Fatal(err)
	}
	if !adoptTokenKey(dir, tok, k, log) {
		t.Fatal("the token's key was not moved into the state directory")
	}
	fi, err := os.Stat(filepath.Join(dir, node.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	got, err := node.LoadOrCreateKey(dir)
	if err != nil || !got.Equals(k) {
		t.Fatalf("the state directory's key is not the token's: %v", err)
	}
	if adoptTokenKey(dir, tok, k, log) {
		t.Fatal("adopted the same key twice")
	}
}
