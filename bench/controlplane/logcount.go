package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
)

// logCounter is a slog.Handler that counts records by level and
// message (thousands of nodes would drown the terminal) and prints the first
// few errors to stderr.
type logCounter struct {
	mu      sync.Mutex
	counts  map[string]int
	example map[string]string // the first record's "err" attribute
	last    map[string]string // the last record's "err" attribute
	printed int
}

func newLogCounter() *logCounter {
	return &logCounter{counts: map[string]int{}, example: map[string]string{}, last: map[string]string{}}
}

func (c *logCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }

func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	key := r.Level.String() + " " + r.Message
	c.mu.Lock()
	c.counts[key]++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			e := oneLine(a.Value.String())
			if _, ok := c.example[key]; !ok {
				c.example[key] = e
			}
			c.last[key] = e
			return false
		}
		return true
	})
	show := r.Level >= slog.LevelError && c.printed < 10
	if show {
		c.printed++
	}
	c.mu.Unlock()
	if show {
		fmt.Fprintf(os.Stderr, "  node log: %s %s\n", r.Level, r.Message)
	}
	return nil
}

func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

// logEvent is one counted kind of log record.
type logEvent struct {
	Event   string `json:"event"`
	Count   int    `json:"count"`
	Example string `json:"example,omitempty"` // the first one's error
	Last    string `json:"last,omitempty"`    // the last one's error
}

// top returns the counted records, most frequent first.
func (c *logCounter) top() []logEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]logEvent, 0, len(c.counts))
	for k, v := range c.counts {
		out = append(out, logEvent{k, v, c.example[k], c.last[k]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Event < out[j].Event
	})
	return out
}

// oneLine squeezes a (multi-line) error into one line of at most 200 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
