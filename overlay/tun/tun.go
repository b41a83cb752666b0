// Package tun provides the overlay's TUN device (conventionally "cbnet0"):
// a layer-3 interface whose packets are read and written by the node,
// without a packet-information header, through the batch-shaped
// forward.Device methods (Read(bufs, sizes, offset), Write(bufs, offset),
// BatchSize).
//
// Two implementations sit behind the same Device: OpenWith with
// Options.Offload opens the TUN with IFF_VNET_HDR and checksum, TCP (and
// on Linux 6.2+ UDP) segmentation offloads, so the kernel hands over 64 KiB
// super-packets with a virtio-net header and takes them back the same way
// (offload_linux.go); without it, or where the kernel refuses, the device
// is songgao/water's plain TUN, one packet of at most the MTU per read and
// write. OffloadStatus says which one is in use and why.
//
// Files: tun.go (names, limits, Options), tun_linux.go (Device: open, MTU,
// address, batched Read/Write, Close), offload_linux.go (IFF_VNET_HDR and
// TUNSETOFFLOAD), check_linux.go (permission check), *_other.go (stubs).
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

// Options tune OpenWith.
type Options struct {
	// Offload asks for IFF_VNET_HDR with checksum and segmentation
	// offloads (Linux); where the kernel refuses, the device is a plain
	// TUN and OffloadStatus says why.
	Offload bool
}
