package cladnet

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// goldenSpec and goldenCert were made by SignCertificate before certificates
// had a role: they must keep verifying.
const (
	goldenSpec = `{"cladnetId":"cnkzdvvj2umnduyauf","name":"gold","ipv4AddressSpace":"10.77.0.0/24","ruleType":"basic","createdAt":"2025-01-01T00:00:00Z","ownerKey":"A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}`
	goldenCert = `{"cladnetId":"cnkzdvvj2umnduyauf","peerId":"12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK","hostName":"gold-host","notBefore":"2024-12-31T23:59:00Z","notAfter":"2124-12-08T00:00:00Z","groups":["web"],"signature":"oVoenQR+EP/NNGtCoKFbyA1bIJ6t8TwIcvwaGjVa1Ls7TtPz9uCj/hCgy4uM9ZzvN05gh0h+mg87kzQlfS1KDA=="}`
)

func TestGoldenCertificateStillVerifies(t *testing.T) {
	var spec Spec
	var c Certificate
	if err := json.Unmarshal([]byte(goldenSpec), &spec); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(goldenCert), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(&spec, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("a certificate issued before roles existed no longer verifies: %v", err)
	}
	if c.RoleName() != RoleMember {
		t.Fatalf("role %q, want member", c.RoleName())
	}
	// Giving it a role must break the signature: the role is signed.
	c.Role = RoleOperator
	if err := c.Verify(&spec, "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("role not covered by the signature: %v", err)
	}
}

func TestCertificateRole(t *testing.T) {
	o := newOwner(t, "lab")
	_, id := newPeer(t)
	now := time.Now()
	for _, tc := range []struct {
		role, want string
		ok         bool
	}{{"", RoleMember, true}, {RoleMember, RoleMember, true}, {RoleOperator, RoleOperator, true}, {"root", "", false}} {
		c, err := SignCertificate(o.Key, o.Spec, id, "h1", nil, now, time.Hour, WithRole(tc.role))
		if !tc.ok {
			if err == nil {
				t.Errorf("role %q accepted", tc.role)
			}
			continue
		}
		if err != nil {
			t.Fatalf("role %q: %v", tc.role, err)
		}
		if c.RoleName() != tc.want {
			t.Errorf("role %q: got %q", tc.role, c.RoleName())
		}
		if err := c.Verify(o.Spec, id, now); err != nil {
			t.Errorf("role %q: %v", tc.role, err)
		}
		b, _ := json.Marshal(c)
		if tc.want == RoleMember && strings.Contains(string(b), `"role"`) {
			t.Errorf("member certificate carries a role field: %s", b)
		}
	}
}

func TestRevocationsSignVerify(t *testing.T) {
	o := newOwner(t, "lab")
	other := newOwner(t, "other")
	_, id := newPeer(t)
	_, id2 := newPeer(t)
	now := time.Now()
	cert, _ := SignCertificate(o.Key, o.Spec, id2, "h2", nil, now, time.Hour)
	good := func() *Revocations {
		return &Revocations{CladnetID: o.Spec.ID, Version: 3, Entries: []Revocation{
			{PeerID: id.String(), HostName: "h1", Reason: "stolen", RevokedAt: now},
			{Fingerprint: cert.Fingerprint()},
		}}
	}
	for _, tc := range []struct {
		name    string
		edit    func(r *Revocations)
		signErr bool
		verErr  error
	}{
		{name: "ok", edit: func(*Revocations) {}},
		{name: "version 0", edit: func(r *Revocations) { r.Version = 0 }, signErr: true},
		{name: "empty entry", edit: func(r *Revocations) { r.Entries = append(r.Entries, Revocation{Reason: "x"}) }, signErr: true},
		{name: "bad peer", edit: func(r *Revocations) { r.Entries[0].PeerID = "nope" }, signErr: true},
		{name: "bad fingerprint", edit: func(r *Revocations) { r.Entries[1].Fingerprint = "ABC" }, signErr: true},
		{name: "long reason", edit: func(r *Revocations) { r.Entries[0].Reason = strings.Repeat("x", 300) }, signErr: true},
		{name: "too many", edit: func(r *Revocations) {
			for range MaxRevocationEntries {
				r.Entries = append(r.Entries, Revocation{PeerID: id.String()})
			}
		}, signErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.edit(r)
			err := r.Sign(o.Key)
			if tc.signErr {
				if err == nil {
					t.Fatal("signed an invalid list")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(o.Spec); err != nil {
				t.Fatal(err)
			}
			if err := r.Verify(other.Spec); !errors.Is(err, ErrRevocationsForeign) {
				t.Fatalf("foreign list: %v", err)
			}
			forged := *r
			forged.Version++
			if err := forged.Verify(o.Spec); !errors.Is(err, ErrRevocationsBadSignature) {
				t.Fatalf("edited list: %v", err)
			}
			unsigned := *r
			unsigned.Signature = ""
			if err := unsigned.Verify(o.Spec); !errors.Is(err, ErrRevocationsUnsigned) {
				t.Fatalf("unsigned list: %v", err)
			}
			// A list signed by another owner key for this CLADNet ID.
			stolen := good()
			tc.edit(stolen)
			_ = stolen.Sign(other.Key)
			if err := stolen.Verify(o.Spec); !errors.Is(err, ErrRevocationsBadSignature) {
				t.Fatalf("list signed by another key: %v", err)
			}
			b, _ := r.Marshal()
			back, err := ParseRevocations(b)
			if err != nil || back.Verify(o.Spec) != nil {
				t.Fatalf("round trip: %v", err)
			}
			if !back.RevokedPeer(id) || back.RevokedPeer(id2) {
				t.Fatal("RevokedPeer wrong")
			}
			if !back.RevokedCert(cert) {
				t.Fatal("certificate revoked by fingerprint not found")
			}
			renewed, _ := SignCertificate(o.Key, o.Spec, id2, "h2", nil, now.Add(time.Hour), time.Hour)
			if back.RevokedCert(renewed) {
				t.Fatal("a renewed certificate (other fingerprint) counts as revoked")
			}
			byPeer, _ := SignCertificate(o.Key, o.Spec, id, "h1", nil, now, time.Hour)
			if !back.RevokedCert(byPeer) {
				t.Fatal("certificate of a revoked peer not revoked")
			}
		})
	}
}

func TestNewerRevocations(t *testing.T) {
	v := func(n uint64) *Revocations { return &Revocations{Version: n} }
	for _, tc := range []struct {
		a, b *Revocations
		want bool
	}{{v(2), v(1), true}, {v(1), v(2), false}, {v(1), v(1), false}, {v(1), nil, true}, {nil, v(1), false}, {nil, nil, false}} {
		if got := NewerRevocations(tc.a, tc.b); got != tc.want {
			t.Errorf("NewerRevocations(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
	var nilList *Revocations
	if nilList.RevokedPeer("x") || nilList.RevokedCert(&Certificate{}) {
		t.Fatal("nil list revokes")
	}
}

func TestOwnerRevoke(t *testing.T) {
	dir := t.TempDir()
	o, err := Create(dir, "lab", "10.77.0.0/24", RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r, err := o.Revocations(dir); err != nil || r != nil {
		t.Fatalf("new CLADNet has a list: %v %v", r, err)
	}
	_, id := newPeer(t)
	now := time.Now()
	r1, err := o.Revoke(dir, Revocation{PeerID: id.String(), HostName: "h1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := o.Revoke(dir, Revocation{PeerID: id.String(), HostName: "h1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != 1 || r2.Version != 2 || len(r2.Entries) != 1 {
		t.Fatalf("versions %d %d, entries %d", r1.Version, r2.Version, len(r2.Entries))
	}
	back, err := o.Revocations(dir)
	if err != nil || back.Version != 2 || !back.RevokedPeer(id) {
		t.Fatalf("reload: %+v %v", back, err)
	}
}

func FuzzParseRevocations(f *testing.F) {
	f.Add([]byte(`{"cladnetId":"cnkzdvvj2umnduyauf","version":1,"issuedAt":"2025-01-01T00:00:00Z","entries":[{"peerId":"12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK"}],"signature":"AA=="}`))
	f.Add([]byte(`{"entries":[{}]}`))
	f.Add([]byte(`null`))
	var spec Spec
	_ = json.Unmarshal([]byte(goldenSpec), &spec)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRevocations(b)
		if err != nil {
			return
		}
		if r.Version == 0 || len(r.Entries) > MaxRevocationEntries {
			t.Fatalf("invalid list parsed: %+v", r)
		}
		_ = r.Verify(&spec)
		_ = r.RevokedPeer("x")
		if _, err := r.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}
