package ipam

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

func TestDated(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		claimedAt time.Time
		firstSeen time.Time
		contested bool
		want      time.Time
		backdated bool
	}{
		{"fresh, uncontested", t0, t0.Add(time.Second), false, t0, false},
		{"old, uncontested (a newcomer learning the table)", t0, t0.Add(24 * time.Hour), false, t0, false},
		{"fresh, contested (an honest race)", t0, t0.Add(FreshWindow), true, t0, false},
		{"old, contested (backdated)", t0, t0.Add(FreshWindow + time.Second), true, t0.Add(FreshWindow + time.Second), true},
		{"dated 1970, contested", time.Unix(86400, 0), t0, true, t0, true},
		{"clock ahead, contested", t0.Add(time.Minute), t0, true, t0.Add(time.Minute), false},
	} {
		got, bd := Dated(tc.claimedAt, tc.firstSeen, tc.contested)
		if !got.Equal(tc.want) || bd != tc.backdated {
			t.Errorf("%s: Dated = %s, %v; want %s, %v", tc.name, got, bd, tc.want, tc.backdated)
		}
	}
}

func TestBetter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	lo, hi := peer.ID("\x00a"), peer.ID("\x00b")
	for _, tc := range []struct {
		name string
		a, b MemberClaim
		want bool
	}{
		{"earlier wins", MemberClaim{Peer: hi, ClaimedAt: t0}, MemberClaim{Peer: lo, ClaimedAt: t0.Add(time.Second)}, true},
		{"later loses", MemberClaim{Peer: lo, ClaimedAt: t0.Add(time.Second)}, MemberClaim{Peer: hi, ClaimedAt: t0}, false},
		{"tie: lower peer wins", MemberClaim{Peer: lo, ClaimedAt: t0}, MemberClaim{Peer: hi, ClaimedAt: t0}, true},
		{"tie: higher peer loses", MemberClaim{Peer: hi, ClaimedAt: t0}, MemberClaim{Peer: lo, ClaimedAt: t0}, false},
		{"bound beats an earlier unbound", MemberClaim{Peer: hi, ClaimedAt: t0.Add(time.Hour), Bound: true}, MemberClaim{Peer: lo, ClaimedAt: t0}, true},
		{"unbound loses to a later bound", MemberClaim{Peer: lo, ClaimedAt: t0}, MemberClaim{Peer: hi, ClaimedAt: t0.Add(time.Hour), Bound: true}, false},
	} {
		if got := Better(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Better = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A claim may not be dated beyond now + MaxClockSkew, and a certificate
// that binds an address makes claims on any other invalid.
func TestValidateClaimTimesAndBoundAddress(t *testing.T) {
	o := testOwner(t, "lab", "10.9.0.0/24")
	now := time.Now()
	v := fixedValidator(now, o.Spec)
	who := newIdentity(t, o, "a")
	_, future := signedClaim(t, o.Spec, who, "10.9.0.5", now.Add(MaxClockSkew+time.Minute), 1, nil)
	if err := v.Validate(ClaimKey(o.Spec.ID, mustAddr("10.9.0.5")), future); !errors.Is(err, ErrClaimFuture) {
		t.Errorf("claim dated in the future: %v, want ErrClaimFuture", err)
	}
	_, skewed := signedClaim(t, o.Spec, who, "10.9.0.5", now.Add(MaxClockSkew-time.Minute), 1, nil)
	if err := v.Validate(ClaimKey(o.Spec.ID, mustAddr("10.9.0.5")), skewed); err != nil {
		t.Errorf("claim within the clock skew: %v", err)
	}

	bound := newIdentity(t, o, "b")
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, bound.id, "b", nil, now, time.Hour, cladnet.WithIP(mustAddr("10.9.0.7")))
	if err != nil {
		t.Fatal(err)
	}
	bound.cert = cert
	other, _ := signedClaim(t, o.Spec, bound, "10.9.0.8", now, 1, nil)
	otherRec, _ := other.Marshal()
	if err := v.Validate(ClaimKey(o.Spec.ID, mustAddr("10.9.0.8")), otherRec); !errors.Is(err, ErrNotBoundIP) {
		t.Errorf("bound certificate claiming another address: %v, want ErrNotBoundIP", err)
	}
	own, ownRec := signedClaim(t, o.Spec, bound, "10.9.0.7", now, 1, nil)
	if err := v.Validate(ClaimKey(o.Spec.ID, mustAddr("10.9.0.7")), ownRec); err != nil || !own.Bound() {
		t.Fatalf("bound certificate claiming its address: %v (bound %v)", err, own.Bound())
	}
	// An unbound member's earlier claim on the bound address loses to the
	// bound one, in any order.
	_, early := signedClaim(t, o.Spec, who, "10.9.0.7", now.Add(-time.Hour), 1, nil)
	for _, vals := range [][][]byte{{early, ownRec}, {ownRec, early}} {
		i, err := v.Select(ClaimKey(o.Spec.ID, mustAddr("10.9.0.7")), vals)
		if err != nil || string(vals[i]) != string(ownRec) {
			t.Errorf("Select chose %d (%v), want the bound claim", i, err)
		}
	}
	if _, err := cladnet.SignCertificate(o.Key, o.Spec, bound.id, "b", nil, now, time.Hour, cladnet.WithIP(mustAddr("10.10.0.7"))); err == nil {
		t.Error("a certificate binding an address outside the range was issued")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// M3: a node refuses claims of CLADNets it does not serve unless it opted
// in; one that knows only the owner key (a bootstrap node) verifies the
// certificate.
func TestValidateUnknownAndOwnerOnlyCladnets(t *testing.T) {
	o := testOwner(t, "lab", "10.9.0.0/24")
	foreign := testOwner(t, "lab", "10.9.0.0/24") // same name, another owner key
	now := time.Now()
	who := newIdentity(t, o, "a")
	_, good := signedClaim(t, o.Spec, who, "10.9.0.5", now, 1, nil)
	forger := newIdentity(t, foreign, "a")
	forger.cert.CladnetID = o.Spec.ID // a certificate of o's CLADNet signed by another key
	_, forged := signedClaim(t, o.Spec, forger, "10.9.0.5", now, 1, func(c *Claim) { c.CladnetID = o.Spec.ID })
	key := ClaimKey(o.Spec.ID, mustAddr("10.9.0.5"))
	for _, tc := range []struct {
		name        string
		v           *Validator
		good, forge error // nil: accepted
	}{
		{"knows nothing", fixedValidator(now), ErrUnknownCladnet, ErrUnknownCladnet},
		{"opted in (--any-cladnet)", fixedValidator(now).WithUnknown(), nil, nil},
		{"knows the owner key", fixedValidator(now).WithOwners(o.Spec.OwnerKey), nil, ErrClaimCert},
		{"knows another owner key", fixedValidator(now).WithOwners(foreign.Spec.OwnerKey), ErrUnknownCladnet, ErrUnknownCladnet},
		{"knows the spec", fixedValidator(now, o.Spec), nil, ErrClaimCert},
	} {
		for _, c := range []struct {
			what string
			rec  []byte
			want error
		}{{"genuine", good, tc.good}, {"forged", forged, tc.forge}} {
			err := tc.v.Validate(key, c.rec)
			if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want) && !errors.Is(err, ErrClaimSignature)) {
				t.Errorf("%s, %s claim: %v, want %v", tc.name, c.what, err, c.want)
			}
		}
	}
}
