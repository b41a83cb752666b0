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
func Open(name string, mtu int) (*Device, error) {
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
func (d *Device) Read([]byte) (int, error) { return 0, errors.ErrUnsupported }

// Write is only implemented on Linux.
func (d *Device) Write([]byte) (int, error) { return 0, errors.ErrUnsupported }

// SetAddr is only implemented on Linux.
func (d *Device) SetAddr(netip.Prefix) error { return errors.ErrUnsupported }

// Close is only implemented on Linux.
func (d *Device) Close() error { return nil }
