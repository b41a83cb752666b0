package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
)

var (
	apiFlag  = &cli.StringFlag{Name: "api", Usage: "the node's local API address", Value: api.DefaultAddr, EnvVars: []string{"CBNODE_API"}}
	jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	longFlag = &cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "full peer IDs and more columns"}
)

func client(c *cli.Context) *api.Client { return api.NewClient(c.String("api")) }

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show this node: CLADNet, overlay IP, health, addresses, uptime",
		Flags: []cli.Flag{apiFlag, jsonFlag, longFlag},
		Action: func(c *cli.Context) error {
			st, err := client(c).Status(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(st)
			}
			ip := st.IPv4CIDR
			if ip == "" {
				ip = "(none: " + st.IPAMState + ")"
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(w, "CLADNet\t%s (%s), range %s, rule %s\n", st.Cladnet, st.CladnetID, st.CIDR, st.RuleType)
			fmt.Fprintf(w, "Host\t%s\n", st.HostName)
			fmt.Fprintf(w, "Peer ID\t%s\n", st.PeerID)
			fmt.Fprintf(w, "Overlay IP\t%s\n", ip)
			if st.Device != "" {
				fmt.Fprintf(w, "Device\t%s\n", st.Device)
			}
			fmt.Fprintf(w, "State\t%s\n", st.State)
			fmt.Fprintf(w, "Members\t%d\n", st.Members)
			if st.Tunnels != "" {
				fmt.Fprintf(w, "Tunnels\t%s\n", st.Tunnels)
			}
			fmt.Fprintf(w, "Uptime\t%s (version %s)\n", st.Uptime, st.Version)
			fmt.Fprintf(w, "Certificate\tvalid until %s\n", st.CertUntil.Format(time.RFC3339))
			if st.IdentityConflict != "" {
				fmt.Fprintf(w, "Identity conflict\t%s\n", st.IdentityConflict)
			}
			for _, l := range healthLines(st.Health, c.Bool("long")) {
				fmt.Fprintf(w, "%s\t%s\n", l[0], l[1])
			}
			addrs := st.Addrs
			if !c.Bool("long") {
				addrs = dialAddrs(addrs)
				if len(addrs) == 0 {
					addrs = []string{"(none but loopback and relay addresses; --long lists them)"}
				}
			}
			for i, a := range addrs {
				label := ""
				if i == 0 {
					label = "Addresses"
				}
				fmt.Fprintf(w, "%s\t%s\n", label, a)
			}
			return w.Flush()
		},
	}
}

func netcheckCommand() *cli.Command {
	return &cli.Command{
		Name:  "netcheck",
		Usage: "check connectivity now: each bootstrap node and relay, NAT type, public address seen, hole-punch readiness",
		Description: `Asks the running node (GET /v1/netcheck) to dial every bootstrap node and
relay within 5 s each and ping them, and reports that with what AutoNAT and
the peers say about this node's reachability. Exits 1 if no bootstrap node
or relay answered.`,
		Flags: []cli.Flag{apiFlag, jsonFlag, longFlag},
		Action: func(c *cli.Context) error {
			nc, err := client(c).Netcheck(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				err = printJSON(nc)
			} else {
				_, err = fmt.Print(netcheckReport(nc, c.Bool("long")))
			}
			if err != nil {
				return err
			}
			for _, t := range nc.Targets {
				if t.OK {
					return nil
				}
			}
			return errors.New("netcheck: no bootstrap node or relay answered: check the addresses in the token (--bootstrap) and that their port (TCP and UDP, default 7460) is open to this node")
		},
	}
}

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list the CLADNet's members as this node sees them",
		Flags: []cli.Flag{apiFlag, jsonFlag, longFlag},
		Action: func(c *cli.Context) error {
			if c.Bool("json") {
				raw, err := client(c).PeersRaw(c.Context)
				if err != nil {
					return err
				}
				_, err = os.Stdout.Write(raw)
				return err
			}
			peers, err := client(c).Peers(c.Context)
			if err != nil {
				return err
			}
			return printPeers(os.Stdout, peers, c.Bool("long"), time.Now())
		},
	}
}

// printPeers is the peers table: per member its overlay IP, state, whether
// its link is active, idle or dead, the path (direct IP:port or relay), the
// RTT, when data last came in and the counters.
func printPeers(out io.Writer, peers []api.Peer, long bool, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := "HOST\tOVERLAY IP\tSTATE\tLINK\tPATH\tRTT\tLAST RX\tTX\tRX\tDROPS\tPEER"
	if long {
		head += "\tLAST SEEN"
	}
	fmt.Fprintln(w, head)
	for _, p := range peers {
		host := p.HostName
		if p.Self {
			host += " (self)"
		}
		tx, rx, drops, lastRx := "-", "-", "-", "-"
		if st := p.Link; st != nil {
			tx = fmt.Sprintf("%dp/%s", st.TxPackets, bytesStr(st.TxBytes))
			rx = fmt.Sprintf("%dp/%s", st.RxPackets, bytesStr(st.RxBytes))
			var n uint64
			for _, v := range st.Drops {
				n += v
			}
			drops = fmt.Sprint(n)
			lastRx = ago(st.LastRecv, now)
		}
		ip := p.IP
		if ip == "" {
			ip = "-"
		}
		id := p.HostID
		if !long {
			id = shortID(id)
		}
		link, path, rtt := "-", "-", "-"
		if !p.Self {
			link, path, rtt = linkState(p.Link, now), pathStr(p.Link, long), rttStr(p.RTTms)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", host, ip, p.State, link, path, rtt, lastRx, tx, rx, drops, id)
		if long {
			seen := "now"
			if !p.Self {
				seen = ago(p.LastSeen, now)
			}
			fmt.Fprintf(w, "\t%s", seen)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

func bytesStr(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "measure the RTT to a member over the overlay, and show the path",
		ArgsUsage: "OVERLAY-IP|HOST|PEER-ID",
		Flags: []cli.Flag{apiFlag, jsonFlag,
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "number of pings", Value: 3},
			&cli.DurationFlag{Name: "interval", Usage: "time between pings", Value: 500 * time.Millisecond}},
		Action: func(c *cli.Context) error {
			target, err := oneArg(c, "target (overlay IP, host name or peer ID)")
			if err != nil {
				return err
			}
			if c.Int("count") < 1 {
				return withCode(exitUsage, fmt.Errorf("--count must be at least 1"))
			}
			cl := client(c)
			failed := 0
			var last error
			for i := 0; i < c.Int("count"); i++ {
				if i > 0 {
					select {
					case <-c.Context.Done():
						return nil
					case <-time.After(c.Duration("interval")):
					}
				}
				res, err := cl.Ping(c.Context, target)
				var ue *api.UnreachableError
				var se *api.StatusError
				if errors.As(err, &ue) || (errors.As(err, &se) && se.Code != http.StatusGatewayTimeout && se.Code != http.StatusInternalServerError) {
					return err // no node, no such member: trying again will not help
				}
				if err != nil {
					failed, last = failed+1, err
					if c.Int("count") > 1 {
						fmt.Fprintf(os.Stderr, "ping %s: %v\n", target, err)
					}
					continue
				}
				if c.Bool("json") {
					if err := printJSON(res); err != nil {
						return err
					}
					continue
				}
				path := "direct"
				if res.Relayed {
					path = "relayed"
				}
				fmt.Printf("pong from %s (%s) via %s %s (%s) in %.3f ms\n", res.HostName, res.IP, path, res.Remote, res.Transport, res.RTTms)
			}
			switch {
			case failed == 0:
				return nil
			case c.Int("count") == 1:
				return last
			}
			return fmt.Errorf("%d of %d pings to %s failed (last: %v)", failed, c.Int("count"), target, last)
		},
	}
}

func setDetailsCommand() *cli.Command {
	return &cli.Command{
		Name:  "set-details",
		Usage: "update this node's cloud information at run time (or, with --host, any member's through the operator)",
		Description: `Sends PUT /v1/cladnet/{id}/peer/{self}/details; the node re-announces it.
Only the fields given change. With --host H (and --operator URL), the operator
signs the patch with the owner key and hands it to member H, which must be
online.`,
		Flags: append(append([]cli.Flag{apiFlag}, cloudFlags()...), setDetailsOperatorFlags()...),
		Action: func(c *cli.Context) error {
			var patch cost.CloudPatch
			set := func(flag string, dst **string) {
				if c.IsSet(flag) {
					v := c.String(flag)
					*dst = &v
				}
			}
			set("provider", &patch.ProviderName)
			set("region", &patch.RegionID)
			set("zone", &patch.AvailabilityZoneID)
			set("vpc", &patch.VirtualNetworkID)
			set("subnet-id", &patch.SubnetID)
			set("public-ip", &patch.PublicIP)
			if c.IsSet("private-ip") {
				ips := splitList(c.StringSlice("private-ip"))
				patch.PrivateIPs = &ips
			}
			if patch.Empty() {
				return withCode(exitUsage, errors.New("set-details: give at least one of --provider, --region, --zone, --vpc, --subnet-id, --private-ip, --public-ip (an empty value clears a field)"))
			}
			if c.IsSet("host") {
				return setDetailsViaOperator(c, patch)
			}
			cl := client(c)
			st, err := cl.Status(c.Context)
			if err != nil {
				return err
			}
			out, err := cl.SetDetails(c.Context, st.PeerID, patch)
			if err != nil {
				return err
			}
			return printJSON(out.Details)
		},
	}
}

func ipamCommand() *cli.Command {
	return &cli.Command{
		Name:  "ipam",
		Usage: "address-space tools",
		Subcommands: []*cli.Command{{
			Name:  "recommend",
			Usage: "recommend a CLADNet range that overlaps none of the given subnets",
			Description: `Prints the free space of each RFC 1918 block after removing --subnet ranges,
and the smallest range holding --hosts nodes with room to double, chosen
deterministically (first in 10/8, then 172.16/12, then 192.168/16, lowest
address first).`,
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "subnet", Usage: "subnet in use (repeatable, or comma-separated)"},
				&cli.IntFlag{Name: "hosts", Usage: "expected number of nodes", Required: true},
				jsonFlag,
			},
			Action: func(c *cli.Context) error {
				res, err := api.ComputeAddressSpaces(api.AddressSpaceRequest{IPv4CIDRs: splitList(c.StringSlice("subnet")), Hosts: c.Int("hosts")})
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(res)
				}
				fmt.Printf("recommended: %s (for %d hosts, headroom x%g)\n", res.Recommended, res.Hosts, res.Headroom)
				for _, b := range []struct {
					name string
					l    []string
				}{{"10.0.0.0/8", res.Space10s}, {"172.16.0.0/12", res.Space172s}, {"192.168.0.0/16", res.Space192s}} {
					free := strings.Join(b.l, " ")
					if free == "" {
						free = "(none)"
					}
					fmt.Printf("free in %s: %s\n", b.name, free)
				}
				return nil
			},
		}},
	}
}
