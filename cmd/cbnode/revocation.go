package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func revocationCommand() *cli.Command {
	return &cli.Command{
		Name:  "revocation",
		Usage: "show or push the CLADNet's revocation list",
		Subcommands: []*cli.Command{
			{
				Name:  "show",
				Usage: "print the revocation list in force on this node",
				Flags: []cli.Flag{apiFlag},
				Action: func(c *cli.Context) error {
					r, err := client(c).Revocation(c.Context)
					if err != nil {
						return err
					}
					if r.Version == 0 {
						fmt.Fprintln(os.Stderr, "no node is revoked in this CLADNet")
					}
					return printJSON(r)
				},
			},
			{
				Name:      "push",
				Usage:     "hand a signed revocation list to this node, which applies and gossips it",
				ArgsUsage: "SIGNED-REVOCATIONS.json",
				Description: `The list comes from 'cbnode cladnet revoke NAME --host H --out FILE' on the
operator's machine (or DIR/NAME/revocations.json). The node applies it if its
version is newer than the one in force, gossips it to every member, and the
members drop the revoked nodes, close their connections and free their
addresses.`,
				Flags: []cli.Flag{apiFlag},
				Action: func(c *cli.Context) error {
					f, err := oneArg(c, "signed revocation list (from 'cbnode cladnet revoke')")
					if err != nil {
						return err
					}
					b, err := os.ReadFile(f)
					if err != nil {
						return fmt.Errorf("revocation list: %w", err)
					}
					if !json.Valid(b) {
						return withCode(exitUsage, fmt.Errorf("revocation list: %s is not JSON (make it with 'cbnode cladnet revoke')", f))
					}
					r, err := client(c).PushRevocation(c.Context, b)
					if err != nil {
						return err
					}
					fmt.Printf("applied revocation list version %d (%d revoked); spreading to the members\n", r.Version, len(r.Entries))
					return nil
				},
			},
		},
	}
}
