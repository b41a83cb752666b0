package overlay

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// ControlFile is where a member keeps the newest control document it
// applied, so a member restarted while its CLADNet is down stays down.
const ControlFile = "control.json"

// Data-plane states of a control document.
const (
	DataPlaneUp   = "up"
	DataPlaneDown = "down"
)

// Bounds of a connectivity test request (members refuse others).
const (
	MaxTestTrials   = 100
	MinTestInterval = 10 * time.Millisecond
	MaxTestInterval = 10 * time.Second
	// MaxTestDuration bounds trials × interval.
	MaxTestDuration = 2 * time.Minute
)

// TestResultProtocol is the libp2p protocol on which a member sends its row
// of a connectivity test to the operator that asked for it.
const TestResultProtocol = protocol.ID("/cbnode/test-result/1.0.0")

// MaxTestRowSize bounds a test row on the wire.
const MaxTestRowSize = 1 << 20

// ControlDoc is a CLADNet's control document, signed by the owner key and
// spread by gossip: the data-plane state every member applies and,
// optionally, a connectivity test request. A member applies only a
// document newer (higher Version) than the one it holds.
type ControlDoc struct {
	CladnetID string    `json:"cladnetId"`
	Version   uint64    `json:"version"`
	IssuedAt  time.Time `json:"issuedAt"`
	// DataPlane is DataPlaneUp or DataPlaneDown.
	DataPlane string `json:"dataPlane"`
	// Test, if set, asks every member to measure every other.
	Test *TestRequest `json:"test,omitempty"`
	// Signature is the owner's base64 Ed25519 signature over the other
	// fields (see SignControl).
	Signature string `json:"signature,omitempty"`
}

// TestRequest asks every member to ping every other member TrialCount
// times, Interval apart, and to send its row to ReportTo before Deadline.
type TestRequest struct {
	RunID      string    `json:"runId"`
	TrialCount int       `json:"trialCount"`
	IntervalMs int64     `json:"intervalMs"`
	ReportTo   string    `json:"reportTo"` // the operator's peer ID
	Deadline   time.Time `json:"deadline"`
}

// Interval is the pause between two trials.
func (t *TestRequest) Interval() time.Duration { return time.Duration(t.IntervalMs) * time.Millisecond }

// Validate checks the bounds of a test request.
func (t *TestRequest) Validate() error {
	switch {
	case t.RunID == "":
		return errors.New("test request has no run ID")
	case t.TrialCount < 1 || t.TrialCount > MaxTestTrials:
		return fmt.Errorf("trialCount %d out of range (1-%d)", t.TrialCount, MaxTestTrials)
	case t.Interval() < MinTestInterval || t.Interval() > MaxTestInterval:
		return fmt.Errorf("interval %s out of range (%s-%s)", t.Interval(), MinTestInterval, MaxTestInterval)
	case time.Duration(t.TrialCount)*t.Interval() > MaxTestDuration:
		return fmt.Errorf("trialCount × interval = %s exceeds %s: fewer trials or a shorter interval", time.Duration(t.TrialCount)*t.Interval(), MaxTestDuration)
	}
	if _, err := peer.Decode(t.ReportTo); err != nil {
		return fmt.Errorf("test request reportTo %q: %w", t.ReportTo, err)
	}
	return nil
}

// TestRow is one member's measurements of a test run, sent on
// TestResultProtocol: the RTT samples of every other member (the operator
// computes the statistics), or Error if the member could not measure.
type TestRow struct {
	RunID    string        `json:"runId"`
	From     string        `json:"from"` // the sender's peer ID
	HostName string        `json:"hostName"`
	IP       string        `json:"ip"`
	Error    string        `json:"error,omitempty"`
	Targets  []TestSamples `json:"targets"`
}

// TestSamples are one ordered pair's measurements.
type TestSamples struct {
	To       string    `json:"to"` // peer ID
	HostName string    `json:"hostName"`
	IP       string    `json:"ip"`
	Sent     int       `json:"sent"`
	RTTMs    []float64 `json:"rttMs"` // one per reply received
	Path     TestPath  `json:"path"`
	Error    string    `json:"error,omitempty"` // the last ping error, if any
}

// TestPath is the path the probes took (forward.PathInfo's fields).
type TestPath struct {
	Relayed   bool   `json:"relayed"`
	Remote    string `json:"remote,omitempty"`
	Transport string `json:"transport,omitempty"`
}

// Errors of control documents; callers may test with errors.Is.
var (
	ErrControlBadSignature = errors.New("control document signature does not verify against the CLADNet owner key")
	ErrControlStale        = errors.New("control document is not newer than the one in force")
)

const controlDomain = "cbnode-control-v1\n"

func (d *ControlDoc) signedBytes() ([]byte, error) {
	body := *d
	body.Signature = ""
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("control: encode for signing: %w", err)
	}
	return append([]byte(controlDomain), b...), nil
}

func (d *ControlDoc) validate() error {
	switch {
	case d.CladnetID == "":
		return errors.New("control document has no cladnetId")
	case d.Version == 0:
		return errors.New("control document version 0 is reserved")
	case d.DataPlane != DataPlaneUp && d.DataPlane != DataPlaneDown:
		return fmt.Errorf("control document dataPlane %q: want %q or %q", d.DataPlane, DataPlaneUp, DataPlaneDown)
	}
	if d.Test != nil {
		return d.Test.Validate()
	}
	return nil
}

// SignControl validates d and signs it with the CLADNet owner key. A zero
// IssuedAt is set to now; it is stored in UTC.
func SignControl(owner ed25519.PrivateKey, d *ControlDoc) error {
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign control: owner key has %d bytes, want %d", len(owner), ed25519.PrivateKeySize)
	}
	if err := d.validate(); err != nil {
		return fmt.Errorf("sign control: %w", err)
	}
	if d.IssuedAt.IsZero() {
		d.IssuedAt = time.Now()
	}
	d.IssuedAt = d.IssuedAt.UTC()
	msg, err := d.signedBytes()
	if err != nil {
		return err
	}
	d.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(owner, msg))
	return nil
}

// ParseControl decodes and verifies a control document of spec's CLADNet.
func ParseControl(spec *cladnet.Spec, b []byte) (*ControlDoc, error) {
	if len(b) > MaxTestRowSize {
		return nil, fmt.Errorf("control document of %d bytes is too large", len(b))
	}
	var d ControlDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("control document: %w", err)
	}
	if d.CladnetID != spec.ID {
		return nil, fmt.Errorf("control document belongs to CLADNet %s, not %s", d.CladnetID, spec.ID)
	}
	pub, err := spec.OwnerPublicKey()
	if err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(d.Signature)
	if err != nil || d.Signature == "" {
		return nil, fmt.Errorf("%w (unsigned or not base64)", ErrControlBadSignature)
	}
	msg, err := d.signedBytes()
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, msg, sig) {
		return nil, ErrControlBadSignature
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return &d, nil
}

// checkControl is the validator's decision: b must be an owner-signed
// control document newer than cur (nil: none yet).
func checkControl(spec *cladnet.Spec, cur *ControlDoc, b []byte) (*ControlDoc, error) {
	d, err := ParseControl(spec, b)
	if err != nil {
		return nil, err
	}
	if cur != nil && d.Version <= cur.Version {
		return nil, fmt.Errorf("%w (version %d, in force %d)", ErrControlStale, d.Version, cur.Version)
	}
	return d, nil
}

// Control spreads a CLADNet's signed control documents by gossip, like
// Rules: the validator passes only owner-signed documents newer than the
// one in force (so an old DOWN cannot be replayed), the newest is kept in
// the state directory and re-published when a peer joins the topic.
type Control struct {
	*signedTopic[ControlDoc]
	spec  *cladnet.Spec
	watch chan struct{}
}

// ControlTopic is the gossipsub topic of a CLADNet's control documents.
func ControlTopic(cladnetID string) string { return "/cbnode/cladnet/" + cladnetID + "/control" }

// StartControl joins the control topic; stateDir keeps the newest document.
func StartControl(ctx context.Context, spec *cladnet.Spec, n *node.Node, stateDir string, log *slog.Logger) (*Control, error) {
	kind := signedDoc[ControlDoc]{
		file:    ControlFile,
		verify:  func(b []byte) (*ControlDoc, error) { return ParseControl(spec, b) },
		newer:   func(d, cur *ControlDoc) bool { return cur == nil || d.Version > cur.Version },
		marshal: func(d *ControlDoc) ([]byte, error) { return json.Marshal(d) },
		stale: func(d, _ *ControlDoc) error {
			return fmt.Errorf("%w (version %d)", ErrControlStale, d.Version)
		},
		noun: "control document", rejected: "rejected control document", applied: "applied control document",
		appliedAttrs: func(d *ControlDoc) []any {
			return []any{"version", d.Version, "dataPlane", d.DataPlane, "test", d.Test != nil}
		},
	}
	c := &Control{signedTopic: newSignedTopic(kind, stateDir, nil, log), spec: spec}
	c.watch = c.changes()
	if err := c.start(ctx, n, ControlTopic(spec.ID)); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return c, nil
}

// Submit verifies a signed control document newer than the one in force,
// applies it and gossips it. A returned document with an error was applied
// here but not gossiped (peers get it when they next join the topic).
func (c *Control) Submit(ctx context.Context, d *ControlDoc) (*ControlDoc, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	d, err = checkControl(c.spec, c.Current(), b)
	if err != nil {
		return nil, err
	}
	return c.submit(ctx, d)
}

// Current returns the document in force (nil: none, the data plane is up).
func (c *Control) Current() *ControlDoc { return c.current() }

// Down reports whether the document in force takes the data plane down.
func (c *Control) Down() bool {
	d := c.Current()
	return d != nil && d.DataPlane == DataPlaneDown
}

// NextVersion is the version of a new document: now's Unix milliseconds,
// or one more than the version in force if that is not lower.
func (c *Control) NextVersion(now time.Time) uint64 {
	v := uint64(now.UnixMilli())
	if cur := c.Current(); cur != nil && cur.Version >= v {
		v = cur.Version + 1
	}
	return v
}

// Changes signals (coalesced) when a new document was applied.
func (c *Control) Changes() <-chan struct{} { return c.watch }

// Close leaves the topic.
func (c *Control) Close() { c.close() }
