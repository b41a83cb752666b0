package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/examples"
	"github.com/cloud-barista/cbnode/tumblebug"
)

func tumblebugCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "tumblebug", Usage: "Tumblebug's URL", Value: "http://localhost:1323/tumblebug", EnvVars: []string{"CBNODE_TUMBLEBUG"}},
		&cli.StringFlag{Name: "ns", Usage: "Tumblebug namespace", Value: "default", EnvVars: []string{"CBNODE_TUMBLEBUG_NS"}},
		&cli.StringFlag{Name: "infra", Usage: "Tumblebug infra ID (required)", EnvVars: []string{"CBNODE_TUMBLEBUG_INFRA"}},
		&cli.StringFlag{Name: "user", Usage: "Tumblebug API user (basic auth)", EnvVars: []string{"TB_API_USERNAME"}},
		&cli.StringFlag{Name: "password", Usage: "Tumblebug API password (prefer the env var: a flag shows in ps)", EnvVars: []string{"TB_API_PASSWORD"}},
		operatorURLFlag, operatorAuthFlag,
		&cli.StringFlag{Name: "cladnet", Usage: "CLADNet name (default: the infra ID); created if the operator has none by that name"},
		&cli.StringFlag{Name: "cidr", Usage: "CLADNet range for a new CLADNet (default: one the operator recommends, free of every vNet and subnet)"},
		&cli.StringFlag{Name: "rule-type", Usage: "rule type of a new CLADNet: basic or cost-prioritized", Value: "cost-prioritized"},
		&cli.IntFlag{Name: "hosts", Usage: "members a recommended range must hold (room to double is added)", Value: 250},
		&cli.StringSliceFlag{Name: "bootstrap", Usage: "use this running bootstrap node (multiaddr with /p2p/ID; repeatable) instead of starting one"},
		&cli.StringFlag{Name: "bootstrap-node", Usage: "Tumblebug node ID to run the bootstrap node on (default: the first node with a public IP)"},
		&cli.StringFlag{Name: "binary", Usage: "cbnode binary to install on the nodes (linux, their architecture; default: this program)"},
		&cli.StringFlag{Name: "service", Usage: "how cbnode runs on the nodes: systemd (units in /etc/systemd/system) or background (setsid and a pid file under --root/run/cbnode, for hosts without systemd)", Value: tumblebug.ServiceSystemd},
		&cli.StringFlag{Name: "root", Usage: "install root on the nodes, expanded by their shell (\"$HOME/cbnode\"); --service background only", Value: ""},
		&cli.StringFlag{Name: "sudo", Usage: "how the node user becomes root: sudo, \"sudo -n\", or \"\" when it is root", Value: "sudo"},
		&cli.IntFlag{Name: "port", Usage: "members' TCP and UDP port (opened in the security groups)", Value: 7460},
		&cli.IntFlag{Name: "bootstrap-port", Usage: "the bootstrap node's TCP and UDP port (opened in its security group)", Value: 7461},
		&cli.DurationFlag{Name: "token-ttl", Usage: "validity of the nodes' certificates; the operator renews them when it is in the swarm", Value: 24 * time.Hour},
		&cli.StringSliceFlag{Name: "env", Usage: "extra CBNODE_NAME=VALUE line for every node's /etc/cbnode/env (repeatable)"},
		&cli.StringFlag{Name: "state-file", Usage: "where deploy remembers the nodes it set up (default: the user's config dir, cbnode/tumblebug/NS_INFRA.json)"},
		&cli.DurationFlag{Name: "wait", Usage: "how long to wait for every node to be a member", Value: 3 * time.Minute},
		&cli.IntFlag{Name: "parallel", Usage: "nodes set up at once after the bootstrap node", Value: 4},
	}
	run := func(plan bool) cli.ActionFunc {
		return func(c *cli.Context) error { return tumblebugRun(c, plan) }
	}
	return &cli.Command{
		Name:  "tumblebug",
		Usage: "put every VM of a Tumblebug infra on one CLADNet",
		Subcommands: []*cli.Command{
			{
				Name:  "deploy",
				Usage: "create the CLADNet and install, configure and start cbnode on every node of --infra",
				Description: `Reads the infra (GET /ns/{ns}/infra/{infra}) and its vNets, creates the
CLADNet through the operator (--operator) in a range free of every vNet and
subnet (all of 10.0.0.0/8 when Tumblebug's vNets are there), opens TCP and UDP
--port (and --bootstrap-port on the bootstrap node) in the nodes' security
groups, starts a bootstrap node on the first node with a public IP, then on
each node: installs --binary and the unit, writes /etc/cbnode/env with its
cloud facts, makes its key, delivers a token for that key by file transfer
(never in a command line: Tumblebug keeps a command history) and starts it.
Waits until every node is a member and prints a table. Run it again: it
changes only what is missing; nodes gone from the infra are revoked.
docs/tumblebug.md tells the whole flow. Speaks Tumblebug v0.12.6 to v0.13.x.

` + exitCodesHelp,
				Flags:  flags,
				Action: run(false),
			},
			{
				Name:  "plan",
				Usage: "print what deploy would do (the API calls and commands), changing nothing",
				Description: `Reads the infra, the vNets, the security groups and each node's cbnode
(a read-only probe command), then prints every request and command deploy
would send. Tokens are not issued and never printed.`,
				Flags:  flags,
				Action: run(true),
			},
		},
	}
}

func tumblebugRun(c *cli.Context, plan bool) error {
	if c.String("infra") == "" {
		return withCode(exitUsage, errors.New("--infra is required: the Tumblebug infra ID (GET /tumblebug/ns/{ns}/infra lists them)"))
	}
	tb, err := tumblebug.NewClient(c.String("tumblebug"), c.String("user"), c.String("password"))
	if err != nil {
		return withCode(exitUsage, err)
	}
	op, err := operatorClient(c)
	if err != nil {
		return err
	}
	bin := c.String("binary")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return withCode(exitUsage, fmt.Errorf("cannot find this program (%v): give --binary", err))
		}
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("--binary: %w", err))
	}
	stateFile := c.String("state-file")
	if stateFile == "" {
		if stateFile, err = tumblebug.DefaultStateFile(c.String("ns"), c.String("infra")); err != nil {
			return withCode(exitUsage, err)
		}
	}
	start := time.Now()
	_, err = tumblebug.Run(c.Context, tumblebug.Config{
		TB: tb, Op: op, OperatorURL: c.String("operator"),
		NS: c.String("ns"), Infra: c.String("infra"), Cladnet: c.String("cladnet"),
		CIDR: c.String("cidr"), RuleType: c.String("rule-type"), Hosts: c.Int("hosts"),
		Bootstrap: splitList(c.StringSlice("bootstrap")), BootNode: c.String("bootstrap-node"),
		Layout: tumblebug.Layout{Root: c.String("root"), Sudo: c.String("sudo"), Service: c.String("service"),
			Port: c.Int("port"), BootstrapPort: c.Int("bootstrap-port")},
		Binary: binary, Unit: examples.Unit(), TokenTTL: c.Duration("token-ttl"), Env: c.StringSlice("env"),
		StateFile: stateFile, Wait: c.Duration("wait"), Out: os.Stdout, Plan: plan, Parallel: c.Int("parallel"),
	})
	switch {
	case errors.Is(err, tumblebug.ErrUnreachable):
		return withCode(exitUnreachable, err)
	case errors.Is(err, tumblebug.ErrUnauthorized):
		return withCode(exitCredential, err)
	case errors.Is(err, tumblebug.ErrNotFound):
		return withCode(exitNotFound, err)
	case err != nil:
		return err
	}
	if !plan {
		fmt.Printf("deployed in %.1f s\n", time.Since(start).Seconds())
	}
	return nil
}
