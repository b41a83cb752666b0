// Package logging builds cbnode's slog logger and routes the logs of the
// libraries under it (go-libp2p, the DHT, fx) through the same handler, so
// that a node prints one kind of line only.
//
// go-libp2p logs in two ways, and both are process-wide by their design, not
// by choice here:
//
//   - go-libp2p itself (including the fx start-up errors such as "OnStart hook
//     failed") logs through slog via its gologshim package, whose handler is
//     one global set with gologshim.SetDefaultHandler. Each of its loggers
//     binds the handler on its first use, so RouteLibp2p must run before the
//     first libp2p host is built; a later call changes nothing for loggers
//     that have already logged.
//   - go-libp2p-kad-dht, go-libp2p-kbucket and other IPFS libraries log
//     through go-log/v2, which keeps one global zap core and one level per
//     subsystem. RouteLibp2p replaces go-log's primary core (the one writing
//     to stderr) with a core that hands entries to the slog handler, and sets
//     every subsystem's level.
//
// go-libp2p-pubsub's logger is not global: give it pubsub.WithLogger.
// GOLOG_LOG_LEVEL and GOLOG_LOG_FMT are overridden once RouteLibp2p has run.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// ParseLevel reads debug, info, warn or error (as slog spells them).
func ParseLevel(s string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return lvl, nil
}

// New makes a logger writing to w at level ("debug", "info", "warn",
// "error") in format "text" (slog's key=value lines) or "json" (one JSON
// object a line); "" means info and text.
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	if level == "" {
		level = "info"
	}
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// RouteLibp2p sends the logs of go-libp2p, fx and the go-log based libraries
// to log's handler, keeping those at level or above. Each line carries the
// library's subsystem as the "logger" attribute (fx's also "system"="fx").
// It changes process-wide state (see the package comment); call it once, at
// start-up, before building a libp2p host.
func RouteLibp2p(log *slog.Logger, level slog.Level) {
	h := &minLevel{Handler: log.Handler(), min: level}
	gologshim.SetDefaultHandler(h)
	golog.SetPrimaryCore(&slogCore{h: h})
	// "*" also sets the level of loggers created later.
	_ = golog.SetLogLevel("*", gologLevel(level))
}

func gologLevel(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}

// minLevel drops records below min before the wrapped handler sees them, so
// the libraries can be quieter than cbnode itself.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m *minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return &minLevel{Handler: m.Handler.WithAttrs(a), min: m.min}
}

func (m *minLevel) WithGroup(name string) slog.Handler {
	return &minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}

// slogCore is a zapcore.Core that writes go-log's entries as slog records.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr // from With, already converted
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel: // DPanic, Panic and Fatal too; zap itself panics or exits
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h, attrs: append(append([]slog.Attr(nil), c.attrs...), toAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, e.Caller.PC)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(c.attrs...)
	r.AddAttrs(toAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

// toAttrs converts zap fields one by one (keeping their order) through zap's
// own map encoder, which knows every field type.
func toAttrs(fields []zapcore.Field) []slog.Attr {
	out := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		for k, v := range enc.Fields {
			if err, ok := v.(error); ok {
				v = err.Error()
			}
			out = append(out, slog.Any(k, v))
		}
	}
	return out
}
