package daemon

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/names"
	"github.com/cloud-barista/cbnode/overlay/tun"
)

// DefaultMTU is cbnet0's MTU. Packets ride a reliable stream that
// re-segments them, so the overlay MTU is not bound by the underlay's: in
// bench/dataplane.md a larger MTU moves fewer, larger packets per TUN read
// and write and per frame: over TCP, 1.34 Gbit/s at 1420 against 2.16 at
// 16000, and the inner TCP's retransmits fell from thousands to none
// (README "MTU").
const DefaultMTU = 16000

// Device is the data plane's packet device: what the forwarding engine reads
// and writes, and what the daemon manages on it (its address, its end).
// tun.Device is the real one; forwardtest.Device an in-memory one.
type Device interface {
	forward.Device
	Name() string
	// SetAddr gives the device its overlay address and the CLADNet's
	// on-link route (prefix).
	SetAddr(netip.Prefix) error
	Close() error
}

// OpenTUN is the default OpenDevice: the TUN device of package tun.
func OpenTUN(name string, mtu int) (Device, error) {
	d, err := tun.Open(name, mtu)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Config configures a member. Token and Key are required; every other field
// has a default.
type Config struct {
	Token     *cladnet.Token
	Key       crypto.PrivKey
	StateDir  string
	ListenIPs []string
	Port      int
	Bootstrap []peer.AddrInfo
	APIAddr   string // "" disables the API

	Heartbeat        time.Duration
	MissedHeartbeats int
	Cloud            cost.CloudInfo

	RequestedIP netip.Addr
	Lease       time.Duration

	// Relay makes this member a relay for fellow members (the bootstrap
	// nodes may relay too: see BootstrapConfig).
	Relay bool

	// TUN enables the data plane device (needs root / CAP_NET_ADMIN with
	// the default OpenDevice).
	TUN     bool
	TUNName string
	MTU     int
	// SubnetRoutes are destinations besides this node's overlay address
	// that it accepts from members (a subnet router); every other
	// destination is dropped on receive.
	SubnetRoutes []netip.Prefix
	// OpenDevice opens the data plane's device (default OpenTUN).
	OpenDevice func(name string, mtu int) (Device, error)

	// DNS makes the members' host names resolvable on this machine (with
	// the data plane only; the zero value is off).
	DNS names.Options

	Logger *slog.Logger
	// Ready, if set, is called by Run once the node is up (API listening).
	Ready func(*Member)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TUNName == "" {
		c.TUNName = tun.DefaultName
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.OpenDevice == nil {
		c.OpenDevice = OpenTUN
	}
	return c
}
