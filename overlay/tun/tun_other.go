//go:build !linux

package tun

import (
	"errors"
	"fmt"
	"net/netip"
)

// Device is an open TUN device. It is only implemented on Linux.
type Device struct{ name string }

// Open is only implemented on Linux.
func Open(name string, mtu int) (*Device, error) { return OpenWith(name, mtu, Options{}) }

// OpenWith is only implemented on Linux.
func OpenWith(name string, mtu int, _ Options) (*Device, error) {
	if err := validate(name, mtu); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("tun: open %s: %w", name, errors.ErrUnsupported)
}

// Name returns the device name.
func (d *Device) Name() string { return d.name }

// MTU returns the device MTU.
func (d *Device) MTU() int { return 0 }

// Read is only implemented on Linux.
func (d *Device) Read([][]byte, []int, int) (int, error) { return 0, errors.ErrUnsupported }

// BatchSize is 1.
func (d *Device) BatchSize() int { return 1 }

// Offload is false.
func (d *Device) Offload() bool { return false }

// OffloadStatus says offloads are unsupported.
func (d *Device) OffloadStatus() string { return "off (not Linux)" }

// Write is only implemented on Linux.
func (d *Device) Write([][]byte, int) (int, error) { return 0, errors.ErrUnsupported }

// SetAddr is only implemented on Linux.
func (d *Device) SetAddr(netip.Prefix) error { return errors.ErrUnsupported }

// Close is only implemented on Linux.
func (d *Device) Close() error { return nil }
