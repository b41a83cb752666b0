//go:build !linux

package tun

import (
	"errors"
	"fmt"
)

// CheckPermission is only implemented on Linux.
func CheckPermission() error { return fmt.Errorf("tun: %w", errors.ErrUnsupported) }
