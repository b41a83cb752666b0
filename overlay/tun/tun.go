// Package tun provides the overlay's TUN device (conventionally "cbnet0"):
// a layer-3 interface whose packets are read and written by the node, one
// IP packet per Read or Write, without a packet-information header.
//
// The API is kept small (Open, SetAddr, Name, MTU, Read, Write, Close) so
// that a second implementation, e.g. one using IFF_VNET_HDR offloads with
// batched reads and writes, can be added behind the same methods.
package tun

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// DefaultName is the overlay device name used by cbnode.
const DefaultName = "cbnet0"

// MTU limits accepted by Open.
const (
	MinMTU = 576 // IPv4 minimum datagram size every host must accept
	MaxMTU = 65535
)

// maxNameLen is IFNAMSIZ-1.
const maxNameLen = 15

// ErrClosed is returned by operations on a closed Device. It wraps
// os.ErrClosed, so errors.Is(err, os.ErrClosed) holds as well.
var ErrClosed = fmt.Errorf("tun: device closed: %w", os.ErrClosed)

// Validate checks a device name and MTU as Open would, without opening.
func Validate(name string, mtu int) error { return validate(name, mtu) }

func validate(name string, mtu int) error {
	switch {
	case name == "":
		return errors.New("tun: empty device name")
	case len(name) > maxNameLen:
		return fmt.Errorf("tun: device name %q is longer than %d bytes", name, maxNameLen)
	case name == "." || name == ".." || strings.ContainsAny(name, "/:% \t\n\x00"):
		return fmt.Errorf("tun: invalid device name %q", name)
	case mtu < MinMTU || mtu > MaxMTU:
		return fmt.Errorf("tun: device %s: MTU %d outside [%d, %d]", name, mtu, MinMTU, MaxMTU)
	}
	return nil
}
