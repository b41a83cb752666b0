//go:build linux

package tun

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TUN offload flags (linux/if_tun.h); golang.org/x/sys/unix lacks them.
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
	tunFTSO6 = 0x04
)

// vnetHdrLen is the virtio-net header size the device is set to
// (forward.VirtioNetHdrLen).
const vnetHdrLen = 10

// openVnet creates the TUN with IFF_VNET_HDR and turns on checksum and
// TCP segmentation offload (and UDP segmentation where the kernel has it,
// Linux 6.2+), as wireguard-go does. On success d.f is the device; on
// failure nothing is left open and the error says what the kernel refused.
func (d *Device) openVnet(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF with IFF_VNET_HDR: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		return fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
	}
	// TSO6/USO6 are asked for only with their v4 twins: IPv6 super-packets
	// are dropped by the (IPv4) overlay like any IPv6 packet.
	base := tunFCsum | tunFTSO4 | tunFTSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base|tunFUSO4|tunFUSO6); err == nil {
		d.uso = true
	} else if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base); err != nil {
		return fmt.Errorf("TUNSETOFFLOAD (checksum, TSO): %w", err)
	}
	d.f = os.NewFile(uintptr(fd), "/dev/net/tun")
	d.vnet = true
	ok = true
	return nil
}
