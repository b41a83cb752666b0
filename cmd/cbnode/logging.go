package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/internal/logging"
)

// logFormatFlag picks slog's text lines or JSON objects for the node's log
// (and the libp2p lines routed into it).
var logFormatFlag = &cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"CBNODE_LOG_FORMAT"}}

// newLogger builds the node's logger from --log-level and, where the command
// has it, --log-format, and routes libp2p's own loggers (go-libp2p, fx, the
// DHT) into it, so that stderr holds slog lines only. Of libp2p's lines only
// errors are kept, as libp2p's own defaults do, unless --log-level is debug:
// its warnings are routine on a healthy node (e.g. the DHT's "failed when
// refreshing routing table" on a bootstrap node without peers yet).
func newLogger(c *cli.Context) (*slog.Logger, error) {
	format := c.String(logFormatFlag.Name) // "" (text) on a command without the flag
	lvl, err := logging.ParseLevel(c.String("log-level"))
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	log, err := logging.New(os.Stderr, c.String("log-level"), format)
	if err != nil {
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	libLevel := slog.LevelError
	if lvl <= slog.LevelDebug {
		libLevel = lvl
	}
	logging.RouteLibp2p(log, libLevel)
	return log, nil
}
