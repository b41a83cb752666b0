package main

import (
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/internal/logging"
)

// logFormatFlag picks slog's text lines or JSON objects for the node's log
// (and the libp2p lines routed into it).
var logFormatFlag = &cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"CBNODE_LOG_FORMAT"}}

// newLogger builds the node's logger from --log-level and, where the command
// has it, --log-format, and routes libp2p's own loggers (go-libp2p, fx, the
// DHT) into it, so that stderr holds slog lines only. libp2p lines below
// warn are dropped unless --log-level is debug: at info they would be
// libp2p's chatter, not cbnode's.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	format := "text"
	if slices.Contains(c.FlagNames(), logFormatFlag.Name) {
		format = c.String(logFormatFlag.Name)
	}
	lvl, err := logging.ParseLevel(c.String("log-level"))
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	log, err := logging.New(os.Stderr, c.String("log-level"), format)
	if err != nil {
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	if lvl > slog.LevelDebug {
		lvl = max(lvl, slog.LevelWarn)
	}
	logging.RouteLibp2p(log, lvl)
	return log, nil
}
