package daemon

import (
	"errors"
	"fmt"
	"time"
)

// ErrDissolved is matched (errors.Is) by the error a member ends with when
// its CLADNet's owner dissolved the CLADNet.
var ErrDissolved = errors.New("was dissolved by its owner")

// ErrRevoked: this node's own certificate is revoked (Run's error wraps it).
var ErrRevoked = errors.New("certificate revoked")

// revokedError keeps its one-line message and matches ErrRevoked.
type revokedError struct{ msg string }

func (e *revokedError) Error() string { return e.msg }
func (e *revokedError) Unwrap() error { return ErrRevoked }

func errRevoked(format string, args ...any) error {
	return &revokedError{msg: fmt.Sprintf(format, args...)}
}

// dissolved returns an ErrDissolved error if the revocation list in force
// dissolves the CLADNet.
func (m *Member) dissolved() error {
	if r := m.revocations(); r != nil {
		if cur := r.Current(); cur != nil && cur.Dissolved {
			return fmt.Errorf("CLADNet %s (%s) %w at %s: this node left and removed its device (nothing to fix; join another CLADNet with a new token)", m.spec.Name, m.spec.ID, ErrDissolved, cur.IssuedAt.Format(time.RFC3339))
		}
	}
	return nil
}
