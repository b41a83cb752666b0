package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
)

// syncBuffer is written by the libraries' goroutines and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON slog line: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestNew(t *testing.T) {
	var b bytes.Buffer
	log, err := New(&b, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept", "k", 1)
	if s := b.String(); strings.Contains(s, "dropped") || !strings.Contains(s, `"level":"WARN","msg":"kept","k":1`) {
		t.Errorf("json at warn: %q", s)
	}
	b.Reset()
	log, _ = New(&b, "", "")
	log.Info("hello")
	if s := b.String(); !strings.HasPrefix(s, "time=") || !strings.Contains(s, "level=INFO msg=hello") {
		t.Errorf("default text at info: %q", s)
	}
	for _, bad := range [][2]string{{"loud", "text"}, {"info", "xml"}} {
		if _, err := New(&b, bad[0], bad[1]); err == nil {
			t.Errorf("New(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestRouteLibp2p logs through both of the libraries' logging paths (go-log's
// zap loggers, used by the DHT; gologshim's slog loggers, used by go-libp2p
// and its fx wiring) and expects JSON slog lines at the right levels, and
// nothing below the level given.
func TestRouteLibp2p(t *testing.T) {
	var buf syncBuffer
	log, err := New(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	RouteLibp2p(log, slog.LevelWarn)

	zl := golog.Logger("cbnode-test-golog")
	zl.Debugw("golog debug, dropped")
	zl.Infow("golog info, dropped")
	zl.Warnw("golog warn", "peer", "12D3x", "n", 3)
	zl.Errorw("golog error", "error", errors.New("boom"))

	sl := gologshim.Logger("cbnode-test-shim")
	sl.Info("shim info, dropped")
	sl.With("system", "fx").Error("OnStart hook failed", "error", "bind: address already in use")

	want := []map[string]any{
		{"level": "WARN", "msg": "golog warn", "logger": "cbnode-test-golog", "peer": "12D3x", "n": float64(3)},
		{"level": "ERROR", "msg": "golog error", "logger": "cbnode-test-golog", "error": "boom"},
		{"level": "ERROR", "msg": "OnStart hook failed", "logger": "cbnode-test-shim", "system": "fx", "error": "bind: address already in use"},
	}
	got := buf.lines(t)
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (line %v)", i, k, got[i][k], v, got[i])
			}
		}
		if _, ok := got[i]["time"]; !ok {
			t.Errorf("line %d has no time: %v", i, got[i])
		}
	}
}
