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

// DefaultMTU is cbnet0's MTU with TUN offloads (the default): the kernel
// hands over 64 KiB TCP super-packets whatever the MTU, so an
// Ethernet-sized MTU that no application notices costs next to nothing
// (bench/dataplane.md, README "MTU").
const DefaultMTU = 1420

// DefaultMTUNoOffload is cbnet0's MTU without offloads (--tun-offload=false
// or a kernel that refuses them): then every packet is one TUN read and
// one frame, and a larger MTU moves fewer, larger packets (1.4–2× the
// throughput of 1420 in bench/dataplane.md).
const DefaultMTUNoOffload = 16000

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

// OpenTUN is the default OpenDevice: the TUN device of package tun, with
// segmentation offloads where the kernel has them (see OpenPlainTUN).
func OpenTUN(name string, mtu int) (Device, error) {
	d, err := tun.OpenWith(name, mtu, tun.Options{Offload: true})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// OpenPlainTUN is the OpenDevice of Config.TUNNoOffload: a TUN without
// offloads (one packet of at most the MTU per read and write).
func OpenPlainTUN(name string, mtu int) (Device, error) {
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

	// Relay makes this member offer a relay for fellow members even when
	// it cannot tell it is publicly reachable. By default a member runs a
	// member-only relay (the bootstrap relays' certificate ACL) and offers
	// it once it is publicly reachable (see relayOffered); NoRelay opts
	// out. The bootstrap nodes may relay too: see BootstrapConfig.
	Relay   bool
	NoRelay bool

	// FullMeshMax: while the CLADNet has at most this many members, the
	// node keeps a connection to every member; beyond, tunnels are lazy —
	// opened by the first packet, closed after TunnelIdle without packets.
	// 0: overlay.DefaultFullMeshMax (32); negative: always lazy.
	FullMeshMax int
	// TunnelIdle closes a lazy tunnel after this long without packets
	// (0: forward.DefaultIdleTimeout, 5 min; negative: never).
	TunnelIdle time.Duration
	// ProbeInterval and SuspicionTimeout tune the failure detector: one
	// member probed per interval, a suspected member confirmed dead after
	// the timeout unless it refutes (0: overlay/swim's defaults, 1 s and 3 s).
	ProbeInterval    time.Duration
	SuspicionTimeout time.Duration

	// TUN enables the data plane device (needs root / CAP_NET_ADMIN with
	// the default OpenDevice).
	TUN     bool
	TUNName string
	// MTU of the device; 0 picks DefaultMTU with offloads and
	// DefaultMTUNoOffload without them.
	MTU int
	// TUNNoOffload turns the TUN's segmentation offloads off (the default
	// OpenDevice becomes OpenPlainTUN): for kernels or setups where they
	// misbehave. Without it, offloads are used where the kernel has them.
	TUNNoOffload bool
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
	// autoMTU: MTU was left 0 (withDefaults chose it).
	autoMTU bool
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
		c.autoMTU = true
		c.MTU = DefaultMTU
		if c.TUNNoOffload {
			c.MTU = DefaultMTUNoOffload
		}
	}
	if c.OpenDevice == nil {
		c.OpenDevice = OpenTUN
		if c.TUNNoOffload {
			c.OpenDevice = OpenPlainTUN
		}
	}
	return c
}
