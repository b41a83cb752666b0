package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay/filter"
)

func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:  "rules",
		Usage: "show or push the CLADNet's cost rules",
		Subcommands: []*cli.Command{
			{
				Name:  "show",
				Usage: "print the rules in force on this node",
				Flags: []cli.Flag{apiFlag},
				Action: func(c *cli.Context) error {
					raw, err := client(c).RulesRaw(c.Context)
					if err != nil {
						return err
					}
					_, err = os.Stdout.Write(raw)
					return err
				},
			},
			{
				Name:      "push",
				Usage:     "hand a signed rules document to this node, which applies and gossips it",
				ArgsUsage: "SIGNED-RULES.json",
				Flags:     []cli.Flag{apiFlag},
				Action: func(c *cli.Context) error {
					f, err := oneArg(c, "signed rules file (from 'cbnode cladnet rules')")
					if err != nil {
						return err
					}
					b, err := os.ReadFile(f)
					if err != nil {
						return fmt.Errorf("rules: %w", err)
					}
					if !json.Valid(b) {
						return withCode(exitUsage, fmt.Errorf("rules: %s is not JSON (sign it with 'cbnode cladnet rules')", f))
					}
					r, err := client(c).PushRules(c.Context, b)
					if err != nil {
						return err
					}
					fmt.Printf("applied rules version %d (%s); spreading to the members\n", r.Version, r.RuleType)
					return nil
				},
			},
		},
	}
}

func costCommand() *cli.Command {
	return &cli.Command{
		Name:  "cost",
		Usage: "what this node's traffic cost so far, and what the basic rule would have cost",
		Flags: []cli.Flag{apiFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			rep, err := client(c).Cost(c.Context)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(rep)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "PEER\tPATH CLASS\tSENT\tSPENT\tBASIC WOULD COST\tSAVED")
			for _, p := range rep.Peers {
				classes := make([]string, 0, len(p.Classes))
				for cl := range p.Classes {
					classes = append(classes, string(cl))
				}
				sort.Strings(classes)
				for _, cl := range classes {
					u := p.Classes[cost.Class(cl)]
					fmt.Fprintf(w, "%s\t%s\t%s\t$%.6f\t$%.6f\t$%.6f\n", p.Peer, cl, bytesStr(u.Bytes), u.SpentUSD, u.BasicUSD, u.SavedUSD)
				}
			}
			t := rep.Total
			fmt.Fprintf(w, "TOTAL\t\t%s\t$%.6f\t$%.6f\t$%.6f\n", bytesStr(t.Bytes), t.SpentUSD, t.BasicUSD, t.SavedUSD)
			return w.Flush()
		},
	}
}

func networkingRuleCommand() *cli.Command {
	return &cli.Command{
		Name:  "networking-rule",
		Usage: "this node's path to every peer: underlay address, scope, class, price and why",
		Flags: []cli.Flag{apiFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			cl := client(c)
			st, err := cl.Status(c.Context)
			if err != nil {
				return err
			}
			nr, err := cl.NetworkingRule(c.Context, st.PeerID)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(nr)
			}
			fmt.Printf("rule type %s (rules version %d)\n", nr.RuleType, nr.RulesVer)
			w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "HOST\tPEER IP\tSELECTED IP\tSCOPE\tCLASS\t$/GB\tREASON")
			for _, r := range nr.Rules {
				sel := r.SelectedIP
				if r.Relayed {
					sel = "relayed"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%g\t%s\n", r.HostName, r.PeerIP, sel, r.PeerScope, r.Class, r.PricePerGB, r.Reason)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			printFilter(nr.Filter)
			return nil
		},
	}
}

// printFilter shows the inbound packet filter and its counters.
func printFilter(f *filter.Stats) {
	if f == nil {
		return
	}
	fmt.Println()
	if f.AllowAll {
		fmt.Printf("packet filter: allow all within the CLADNet (%d packets in)\n", f.Passed)
		return
	}
	fmt.Printf("packet filter: default %s; %d packets denied; %d answered our own connections (%d flows tracked, %d evicted)\n",
		f.Default, f.Denied, f.Established, f.Flows, f.FlowsEvicted)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "RULE\tACTION\tFROM\tPROTO\tPORTS/TYPES\tPACKETS")
	for _, r := range f.Rules {
		from := "any member"
		if len(r.From) > 0 {
			from = strings.Join(r.From, ",")
		}
		parts := append([]string(nil), r.Ports...)
		for _, t := range r.ICMPTypes {
			parts = append(parts, fmt.Sprintf("type %d", t))
		}
		what := strings.Join(parts, ",")
		if what == "" {
			what = "all"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Action, from, r.Proto, what, r.Packets)
	}
	fmt.Fprintf(w, "(default)\t%s\t\t\t\t%d\n", f.Default, f.DefaultPackets)
	_ = w.Flush()
}
