package main

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/daemon"
)

// testToken is a join token (with its node key) for CLADNet lab.
func testToken(t *testing.T) (string, *cladnet.Owner) {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", "basic", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	tok := &cladnet.Token{Spec: o.Spec}
	if err := tok.SetPrivateKey(k); err != nil {
		t.Fatal(err)
	}
	if tok.Cert, err = cladnet.SignCertificate(o.Key, o.Spec, id, "vm1", nil, time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s, o
}

// configFor runs 'cbnode join' with args through the real flag set and
// returns the config joinConfig builds from them.
func configFor(t *testing.T, args ...string) (daemon.Config, error) {
	t.Helper()
	cmd := joinCommand()
	var cfg daemon.Config
	var cerr error
	cmd.Action = func(c *cli.Context) error {
		cfg, cerr = joinConfig(c)
		return nil
	}
	app := &cli.App{Name: "cbnode", Commands: []*cli.Command{cmd}}
	full := interspersed(app, append([]string{"cbnode", "join"}, args...))
	if err := app.RunContext(context.Background(), full); err != nil {
		return daemon.Config{}, err
	}
	return cfg, cerr
}

// comparable strips what differs between two runs by construction.
func comparable(c daemon.Config) daemon.Config {
	c.Logger, c.Key, c.Token = nil, nil, nil
	return c
}

// TestJoinConfigTakesEveryFlag: every join flag reaches daemon.Config (a
// flag that is parsed and dropped — as --relay once was — fails here).
func TestJoinConfigTakesEveryFlag(t *testing.T) {
	tok, _ := testToken(t)
	base := []string{"lab", "--token", tok, "--state-dir", t.TempDir()}
	def, err := configFor(t, base...)
	if err != nil {
		t.Fatal(err)
	}
	boot := "/ip4/127.0.0.1/tcp/7460/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"
	check := map[string]struct {
		value string
		field func(daemon.Config) any
		want  any
	}{
		"listen":            {"127.0.0.2", func(c daemon.Config) any { return c.ListenIPs }, []string{"127.0.0.2"}},
		"port":              {"17460", func(c daemon.Config) any { return c.Port }, 17460},
		"bootstrap":         {boot, func(c daemon.Config) any { return len(c.Bootstrap) }, 1},
		"api":               {"127.0.0.1:17470", func(c daemon.Config) any { return c.APIAddr }, "127.0.0.1:17470"},
		"ip":                {"10.77.0.9", func(c daemon.Config) any { return c.RequestedIP }, netip.MustParseAddr("10.77.0.9")},
		"lease":             {"3h", func(c daemon.Config) any { return c.Lease }, 3 * time.Hour},
		"heartbeat":         {"7s", func(c daemon.Config) any { return c.Heartbeat }, 7 * time.Second},
		"missed-heartbeats": {"9", func(c daemon.Config) any { return c.MissedHeartbeats }, 9},
		"tun-name":          {"cbnet9", func(c daemon.Config) any { return c.TUNName }, "cbnet9"},
		"mtu":               {"1420", func(c daemon.Config) any { return c.MTU }, 1420},
		"no-tun":            {"", func(c daemon.Config) any { return c.TUN }, false},
		"tun-offload":       {"=false", func(c daemon.Config) any { return c.TUNNoOffload }, true},
		"subnet-router":     {"192.168.10.7/24", func(c daemon.Config) any { return c.SubnetRoutes }, []netip.Prefix{netip.MustParsePrefix("192.168.10.0/24")}},
		"relay":             {"", func(c daemon.Config) any { return c.Relay }, true},
		"no-relay":          {"", func(c daemon.Config) any { return c.NoRelay }, true},
		"full-mesh-max":     {"0", func(c daemon.Config) any { return c.FullMeshMax }, -1},
		"tunnel-idle":       {"90s", func(c daemon.Config) any { return c.TunnelIdle }, 90 * time.Second},
		"probe-interval":    {"250ms", func(c daemon.Config) any { return c.ProbeInterval }, 250 * time.Millisecond},
		"suspicion-timeout": {"7s", func(c daemon.Config) any { return c.SuspicionTimeout }, 7 * time.Second},
		"dns":               {"server", func(c daemon.Config) any { return c.DNS.Mode }, "server"},
		"hosts-file":        {"/tmp/cbnode-hosts-x", func(c daemon.Config) any { return c.DNS.HostsFile }, "/tmp/cbnode-hosts-x"},
		"provider":          {"gcp", func(c daemon.Config) any { return c.Cloud.ProviderName }, "gcp"},
		"region":            {"us-west1", func(c daemon.Config) any { return c.Cloud.RegionID }, "us-west1"},
		"zone":              {"us-west1-a", func(c daemon.Config) any { return c.Cloud.AvailabilityZoneID }, "us-west1-a"},
		"vpc":               {"vpc-7", func(c daemon.Config) any { return c.Cloud.VirtualNetworkID }, "vpc-7"},
		"subnet-id":         {"sub-7", func(c daemon.Config) any { return c.Cloud.SubnetID }, "sub-7"},
		"private-ip":        {"10.0.0.7", func(c daemon.Config) any { return c.Cloud.PrivateIPs }, []string{"10.0.0.7"}},
		"public-ip":         {"3.3.3.7", func(c daemon.Config) any { return c.Cloud.PublicIP }, "3.3.3.7"},
		"state-dir":         {"/tmp/cbnode-state-x", func(c daemon.Config) any { return c.StateDir }, "/tmp/cbnode-state-x"},
	}
	// Flags that do not configure the daemon itself.
	notConfig := map[string]bool{"token": true, "token-file": true, "check": true, "log-level": true, "log-format": true, "help": true}
	for _, f := range joinCommand().Flags {
		name := f.Names()[0]
		if notConfig[name] {
			continue
		}
		tc, ok := check[name]
		if !ok {
			t.Errorf("--%s has no case here: say which Config field it sets", name)
			continue
		}
		args := append(append([]string{}, base...), "--"+name)
		switch {
		case strings.HasPrefix(tc.value, "="): // a bool flag defaulting to true
			args[len(args)-1] += tc.value
		case tc.value != "":
			args = append(args, tc.value)
		}
		if name == "state-dir" {
			args = []string{"lab", "--token", tok, "--state-dir", tc.value}
		}
		cfg, err := configFor(t, args...)
		if err != nil {
			t.Errorf("--%s %s: %v", name, tc.value, err)
			continue
		}
		if got := tc.field(cfg); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--%s %s: config has %v, want %v", name, tc.value, got, tc.want)
		}
		if reflect.DeepEqual(comparable(cfg), comparable(def)) {
			t.Errorf("--%s %s: the config did not change", name, tc.value)
		}
	}
}

func TestJoinConfigEnv(t *testing.T) {
	tok, _ := testToken(t)
	t.Setenv("CBNODE_TOKEN", tok)
	t.Setenv("CBNODE_RELAY", "true")
	t.Setenv("CBNODE_PRIVATE_IP", "10.0.0.7,10.0.0.8")
	t.Setenv("CBNODE_STATE_DIR", t.TempDir())
	cfg, err := configFor(t, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Relay || strings.Join(cfg.Cloud.PrivateIPs, ",") != "10.0.0.7,10.0.0.8" {
		t.Errorf("env: relay %v, private IPs %v", cfg.Relay, cfg.Cloud.PrivateIPs)
	}
}
