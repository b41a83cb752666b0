package overlay

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
)

func signedControl(t *testing.T, key ed25519.PrivateKey, id string, version uint64, plane string) []byte {
	t.Helper()
	d := &ControlDoc{CladnetID: id, Version: version, DataPlane: plane}
	if err := SignControl(key, d); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestControlValidator: only owner-signed documents newer than the one in
// force pass; an older DOWN (a replay) or a member-signed one is refused.
func TestControlValidator(t *testing.T) {
	o, err := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", "basic", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	spec := o.Spec
	_, memberKey, _ := ed25519.GenerateKey(nil)

	down, err := checkControl(spec, nil, signedControl(t, o.Key, spec.ID, 5, DataPlaneDown))
	if err != nil || down.DataPlane != DataPlaneDown {
		t.Fatalf("owner-signed DOWN v5: %v %v", down, err)
	}
	up, err := checkControl(spec, down, signedControl(t, o.Key, spec.ID, 6, DataPlaneUp))
	if err != nil || up.Version != 6 {
		t.Fatalf("owner-signed UP v6 over v5: %v %v", up, err)
	}
	// A replay of the old DOWN, and an equal version, are stale.
	for _, v := range []uint64{5, 6} {
		if _, err := checkControl(spec, up, signedControl(t, o.Key, spec.ID, v, DataPlaneDown)); !errors.Is(err, ErrControlStale) {
			t.Errorf("DOWN v%d over v6: got %v, want ErrControlStale", v, err)
		}
	}
	// Signed by anyone but the owner: refused, however new.
	if _, err := checkControl(spec, up, signedControl(t, memberKey, spec.ID, 99, DataPlaneDown)); !errors.Is(err, ErrControlBadSignature) {
		t.Errorf("member-signed DOWN: got %v, want ErrControlBadSignature", err)
	}
	// Tampered after signing.
	var d ControlDoc
	_ = json.Unmarshal(signedControl(t, o.Key, spec.ID, 7, DataPlaneUp), &d)
	d.DataPlane = DataPlaneDown
	b, _ := json.Marshal(d)
	if _, err := checkControl(spec, up, b); !errors.Is(err, ErrControlBadSignature) {
		t.Errorf("tampered: got %v, want ErrControlBadSignature", err)
	}
	// Unsigned, foreign CLADNet, garbage.
	d.Signature = ""
	b, _ = json.Marshal(d)
	if _, err := checkControl(spec, up, b); !errors.Is(err, ErrControlBadSignature) {
		t.Errorf("unsigned: got %v", err)
	}
	if _, err := checkControl(spec, up, signedControl(t, o.Key, "cnother", 8, DataPlaneUp)); err == nil {
		t.Error("foreign CLADNet accepted")
	}
	if _, err := checkControl(spec, up, []byte("{")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestTestRequestBounds(t *testing.T) {
	o, _ := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", "basic", "", time.Now())
	good := TestRequest{RunID: "r1", TrialCount: 3, IntervalMs: 100, ReportTo: "12D3KooWLRPJAA5o6BsWbGHC7BdBAeBfgRPhBn7kjfW7yDYBgUG2", Deadline: time.Now()}
	for name, mut := range map[string]func(*TestRequest){
		"no run":     func(r *TestRequest) { r.RunID = "" },
		"0 trials":   func(r *TestRequest) { r.TrialCount = 0 },
		"many":       func(r *TestRequest) { r.TrialCount = MaxTestTrials + 1 },
		"fast":       func(r *TestRequest) { r.IntervalMs = 1 },
		"too long":   func(r *TestRequest) { r.TrialCount, r.IntervalMs = 100, 10000 },
		"bad report": func(r *TestRequest) { r.ReportTo = "nope" },
	} {
		r := good
		mut(&r)
		d := &ControlDoc{CladnetID: o.Spec.ID, Version: 1, DataPlane: DataPlaneUp, Test: &r}
		if err := SignControl(o.Key, d); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	d := &ControlDoc{CladnetID: o.Spec.ID, Version: 1, DataPlane: DataPlaneUp, Test: &good}
	if err := SignControl(o.Key, d); err != nil {
		t.Fatal(err)
	}
}
