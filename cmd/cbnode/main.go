// Command cbnode runs and manages Cloud Adaptive Network (CLADNet) nodes: a
// peer-to-peer overlay that gives VMs in many clouds one private subnet.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	app := newApp()
	err := app.RunContext(ctx, interspersed(app, os.Args))
	stop()
	if err != nil {
		// One line, never a stack trace.
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
		fmt.Fprintf(os.Stderr, "cbnode: %s\n", msg)
		os.Exit(exitCode(err))
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "cbnode",
		Usage:   "Cloud Adaptive Network node: one private subnet across clouds, peer to peer",
		Version: api.Version,
		Description: `cbnode joins VMs spread over clouds, regions and subnets into one virtual
subnet (a CLADNet). There is no central server: nodes find each other in a
private DHT run by bootstrap nodes, agree on members and addresses by signed
gossip, and carry IP packets over encrypted libp2p streams via the TUN device
cbnet0.

Typical use:
  cbnode cladnet create lab --dir ./cladnets          # operator: owner key + spec
  cbnode bootstrap --announce 203.0.113.7             # operator: prints --bootstrap /ip4/...
  cbnode cladnet issue lab --dir ./cladnets --host vm1 --bootstrap /ip4/.../p2p/...
  cbnode join lab --token-file vm1.token              # on each VM (root, for cbnet0)
  cbnode status; cbnode peers; cbnode netcheck; cbnode ping vm2

` + exitCodesHelp,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			cladnetCommand(),
			joinCommand(),
			bootstrapCommand(),
			operatorCommand(),
			tumblebugCommand(),
			testCommand(),
			controlCommand(),
			keyCommand(),
			statusCommand(),
			peersCommand(),
			netcheckCommand(),
			pingCommand(),
			setDetailsCommand(),
			networkingRuleCommand(),
			rulesCommand(),
			revocationCommand(),
			costCommand(),
			ipamCommand(),
			completionCommand(),
			manCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors
		OnUsageError:   usageError,
	}
	app.Action = unknownCommand
	setUsageError(app.Commands)
	return app
}

// usageError turns a flag error into one line (urfave/cli would print the
// whole help text).
func usageError(c *cli.Context, err error, _ bool) error {
	name := "cbnode"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return withCode(exitUsage, fmt.Errorf("%w (see '%s --help')", err, name))
}

func setUsageError(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = usageError
		if len(c.Subcommands) > 0 && c.Action == nil {
			c.Action = unknownCommand
		}
		setUsageError(c.Subcommands)
	}
}

// unknownCommand is the action of the app and of commands that only group
// subcommands: with no word it shows the help, with one it is a usage error
// (urfave/cli would answer "No help topic for ...").
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowSubcommandHelp(c)
	}
	name := "cbnode"
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return withCode(exitUsage, fmt.Errorf("unknown command %q (see '%s --help')", c.Args().First(), name))
}
