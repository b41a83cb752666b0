//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// CheckPermission reports whether this process may create a TUN device:
// /dev/net/tun opens for reading and writing and the effective capability
// set holds CAP_NET_ADMIN (root has it). It creates nothing.
func CheckPermission() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("tun: cannot open /dev/net/tun: %w (load the tun module, or run where /dev/net/tun exists)", err)
	}
	_ = f.Close()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("tun: read capabilities: %w", err)
	}
	eff, err := capEff(string(b))
	if err != nil {
		return err
	}
	if eff&(1<<capNetAdmin) == 0 {
		return errors.New("tun: this process lacks CAP_NET_ADMIN: run as root, give the service AmbientCapabilities=CAP_NET_ADMIN, or 'setcap cap_net_admin+ep' the binary (or use --no-tun)")
	}
	return nil
}

// capEff parses the CapEff line of /proc/self/status.
func capEff(status string) (uint64, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("tun: capabilities %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("tun: no CapEff line in /proc/self/status")
}
