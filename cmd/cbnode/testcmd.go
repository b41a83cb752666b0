package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/operator"
)

// testCommand is `cbnode test CLADNET`: a thin client of the operator's
// connectivity test.
func testCommand() *cli.Command {
	return &cli.Command{
		Name: "test", Usage: "measure every member against every other (RTT matrix) through the operator", ArgsUsage: "CLADNET",
		Flags: []cli.Flag{operatorURLFlag, operatorAuthFlag,
			&cli.IntFlag{Name: "trials", Usage: "probes per ordered pair", Value: 3},
			&cli.DurationFlag{Name: "interval", Usage: "pause between two probes", Value: 200 * time.Millisecond},
			&cli.BoolFlag{Name: "csv", Usage: "print CSV, one line per ordered pair"},
			&cli.BoolFlag{Name: "json", Usage: "print the JSON answer"},
		},
		Action: func(c *cli.Context) error {
			name, err := oneArg(c, "CLADNET")
			if err != nil {
				return err
			}
			cl, err := operatorClient(c)
			if err != nil {
				return err
			}
			// The operator answers when the run is done: trials × interval
			// plus its wait for the members' rows.
			cl.HTTP.Timeout = time.Duration(c.Int("trials"))*c.Duration("interval") + 30*time.Second
			body := map[string]any{"testSpec": map[string]any{"trialCount": c.Int("trials"), "interval": c.Duration("interval").String()}}
			var res operator.TestResult
			if err := opDo(cl, c.Context, http.MethodPost, "/v1/test/cladnet/"+url.PathEscape(name)+"/type/CONNECTIVITY", body, &res); err != nil {
				return err
			}
			switch {
			case c.Bool("json"):
				return printJSON(res)
			case c.Bool("csv"):
				return operator.WriteCSV(os.Stdout, &res)
			}
			printMatrix(&res)
			if !res.IsSucceeded {
				return withCode(exitFailure, fmt.Errorf("connectivity test %s: %s", res.RunID, res.Message))
			}
			return nil
		},
	}
}

// printMatrix prints avg RTT in ms per ordered pair (row: source, column:
// destination), with the loss where there was any.
func printMatrix(r *operator.TestResult) {
	fmt.Printf("run %s: %d trials, %s apart; %s\n", r.RunID, r.TrialCount, r.Interval, r.Message)
	cell := map[[2]string]operator.InterHostNetworkStatus{}
	for _, c := range r.Results.InterHostNetworkStatus {
		cell[[2]string{c.SourceID, c.DestinationID}] = c
	}
	fmt.Printf("%-16s", "FROM \\ TO (ms)")
	for _, h := range r.Hosts {
		fmt.Printf(" %16s", h.HostName)
	}
	fmt.Println()
	for _, src := range r.Hosts {
		fmt.Printf("%-16s", src.HostName)
		for _, dst := range r.Hosts {
			s := "-"
			if c, ok := cell[[2]string{src.HostID, dst.HostID}]; ok {
				switch {
				case !c.Measured:
					s = "lost"
				case c.LossPercent > 0:
					s = fmt.Sprintf("%.2f (%.0f%% loss)", c.AvgRTTMs, c.LossPercent)
				default:
					s = fmt.Sprintf("%.2f", c.AvgRTTMs)
				}
			}
			fmt.Printf(" %16s", s)
		}
		fmt.Println()
	}
	for _, h := range r.Hosts {
		if h.Error != "" {
			fmt.Fprintf(os.Stderr, "%s: %s\n", h.HostName, h.Error)
		}
	}
}

// controlCommand is `cbnode control CLADNET up|down`.
func controlCommand() *cli.Command {
	return &cli.Command{
		Name: "control", Usage: "take a CLADNet's data plane up or down on every member, through the operator", ArgsUsage: "CLADNET up|down",
		Flags: []cli.Flag{operatorURLFlag, operatorAuthFlag},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return withCode(exitUsage, fmt.Errorf("%s: give CLADNET and up or down", c.Command.HelpName))
			}
			cmd := strings.ToUpper(c.Args().Get(1))
			if cmd != "UP" && cmd != "DOWN" {
				return withCode(exitUsage, fmt.Errorf("%s: %q: give up or down", c.Command.HelpName, c.Args().Get(1)))
			}
			cl, err := operatorClient(c)
			if err != nil {
				return err
			}
			var out operator.ControlResponse
			if err := opDo(cl, c.Context, http.MethodPost, "/v1/control/cladnet/"+url.PathEscape(c.Args().Get(0))+"/command/"+cmd, nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s: data plane %s on %d members (version %d). %s\n", c.Args().Get(0), out.DataPlane, out.Members, out.Version, out.Message)
			return nil
		},
	}
}
