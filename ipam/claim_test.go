package ipam

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// testOwner creates a CLADNet with range cidr.
func testOwner(t testing.TB, name, cidr string) *cladnet.Owner {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), name, cidr, cladnet.RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// testIdentity is a node key, its peer ID and certificate.
type testIdentity struct {
	key  crypto.PrivKey
	id   peer.ID
	cert *cladnet.Certificate
}

func newIdentity(t testing.TB, o *cladnet.Owner, host string) testIdentity {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return testIdentity{key: k, id: id, cert: c}
}

// signedClaim builds and signs a claim; mut may change it before signing.
func signedClaim(t testing.TB, spec *cladnet.Spec, who testIdentity, ip string, claimedAt time.Time, seq uint64, mut func(*Claim)) (*Claim, []byte) {
	t.Helper()
	c := &Claim{
		CladnetID: spec.ID,
		IP:        ip,
		PeerID:    who.id.String(),
		Cert:      who.cert,
		ClaimedAt: claimedAt,
		Seq:       seq,
		Expires:   claimedAt.Add(time.Hour),
	}
	if mut != nil {
		mut(c)
	}
	if err := c.Sign(who.key); err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return c, b
}

func fixedValidator(now time.Time, specs ...*cladnet.Spec) *Validator {
	v := NewValidator(specs...)
	v.now = func() time.Time { return now }
	return v
}

func TestClaimKey(t *testing.T) {
	k := ClaimKey("cnabc", netip.MustParseAddr("10.77.0.5"))
	if k != "/cbnode/cnabc/ip/10.77.0.5" {
		t.Fatalf("ClaimKey = %q", k)
	}
	id, ip, err := ParseClaimKey(k)
	if err != nil || id != "cnabc" || ip != netip.MustParseAddr("10.77.0.5") {
		t.Fatalf("ParseClaimKey = %q %v %v", id, ip, err)
	}
	for _, bad := range []string{
		"", "/", "/cbnode", "/cbnode/cnabc/ip", "/cbnode/cnabc/ip/10.77.0.5/x",
		"/ipns/cnabc/ip/10.77.0.5", "/cbnode/cnabc/ipx/10.77.0.5", "/cbnode//ip/10.77.0.5",
		"/cbnode/cn/abc/ip/10.77.0.5", "/cbnode/cnabc/ip/10.77.0.05", "/cbnode/cnabc/ip/::1",
		"/cbnode/cnabc/ip/::ffff:10.77.0.5", "/cbnode/../ip/10.77.0.5", "cbnode/cnabc/ip/10.77.0.5",
	} {
		if _, _, err := ParseClaimKey(bad); err == nil {
			t.Errorf("ParseClaimKey(%q) accepted", bad)
		}
	}
}

func TestValidateAcceptsGoodClaims(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	me := newIdentity(t, o, "vm1")
	now := time.Now()
	c, b := signedClaim(t, o.Spec, me, "10.77.0.5", now, 1, nil)
	key := ClaimKey(o.Spec.ID, c.Addr())
	for name, v := range map[string]*Validator{
		"member":    fixedValidator(now, o.Spec),
		"bootstrap": fixedValidator(now).WithUnknown(), // --any-cladnet
		"released":  fixedValidator(now, o.Spec),
	} {
		val := b
		if name == "released" {
			_, val = signedClaim(t, o.Spec, me, "10.77.0.5", now, 2, func(c *Claim) { c.Released = true })
		}
		if err := v.Validate(key, val); err != nil {
			t.Errorf("%s validator refused a good claim: %v", name, err)
		}
	}
	// Round trip keeps every field.
	got, err := ParseClaim(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.PeerID != c.PeerID || !got.ClaimedAt.Equal(c.ClaimedAt) || got.Seq != 1 || got.Cert.Signature != me.cert.Signature {
		t.Fatalf("round trip changed the claim: %+v", got)
	}
}

func TestValidateRejectsForgedClaims(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	other := testOwner(t, "other", "10.88.0.0/24")
	me := newIdentity(t, o, "vm1")
	mallory := newIdentity(t, o, "mallory")
	now := time.Now()
	member := fixedValidator(now, o.Spec)
	boot := fixedValidator(now).WithUnknown() // --any-cladnet
	key := ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.5"))

	_, good := signedClaim(t, o.Spec, me, "10.77.0.5", now, 1, nil)
	var flipped []byte
	{ // flip one bit of the signature, keeping valid JSON
		c, _ := ParseClaim(good)
		c.Signature[0] ^= 1
		flipped, _ = c.Marshal()
	}
	tampered := func(mut func(*Claim)) []byte { // change a field after signing
		c, _ := ParseClaim(good)
		mut(c)
		b, _ := c.Marshal()
		return b
	}
	// Mallory signs a claim carrying my certificate.
	stolenCert := mallory
	stolenCert.cert = me.cert
	// A certificate for me, signed by another CLADNet's owner but naming ours.
	forged := me
	var err error
	forged.cert, err = cladnet.SignCertificate(other.Key, o.Spec, me.id, "vm1", nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of another CLADNet, used in a claim for ours.
	foreign := me
	foreign.cert, err = cladnet.SignCertificate(other.Key, other.Spec, me.id, "vm1", nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredCert := me
	expiredCert.cert, err = cladnet.SignCertificate(o.Key, o.Spec, me.id, "vm1", nil, now.Add(-3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	big := me
	big.cert, err = cladnet.SignCertificate(o.Key, o.Spec, me.id, "vm1", []string{strings.Repeat("g", MaxClaimSize)}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bigClaim := &Claim{CladnetID: o.Spec.ID, IP: "10.77.0.5", PeerID: me.id.String(), Cert: big.cert, ClaimedAt: now, Seq: 1, Expires: now.Add(time.Hour)}
	if err := bigClaim.Sign(me.key); err != nil {
		t.Fatal(err)
	}
	if _, err := bigClaim.Marshal(); !errors.Is(err, ErrClaimTooLarge) {
		t.Errorf("Marshal of an oversized claim: %v", err)
	}
	bigJSON := append([]byte(`{"cladnetId":"`), bytes.Repeat([]byte("a"), MaxClaimSize)...)

	sign := func(who testIdentity, ip string, mut func(*Claim)) []byte {
		_, b := signedClaim(t, o.Spec, who, ip, now, 1, mut)
		return b
	}
	type tc struct {
		name   string
		key    string
		val    []byte
		want   error
		bootOK bool // a bootstrap node cannot tell
	}
	cases := []tc{
		{name: "flipped signature", key: key, val: flipped, want: ErrClaimSignature},
		{name: "seq changed after signing", key: key, val: tampered(func(c *Claim) { c.Seq++ }), want: ErrClaimSignature},
		{name: "expiry extended after signing", key: key, val: tampered(func(c *Claim) { c.Expires = c.Expires.Add(time.Hour) }), want: ErrClaimSignature},
		{name: "claimant swapped after signing", key: key, val: tampered(func(c *Claim) { c.PeerID = mallory.id.String(); c.Cert = mallory.cert }), want: ErrClaimSignature},
		{name: "no signature", key: key, val: tampered(func(c *Claim) { c.Signature = nil }), want: ErrMalformedClaim},
		{name: "claimant is not the certificate's peer", key: key, val: sign(stolenCert, "10.77.0.5", nil), want: ErrClaimCert},
		{name: "certificate forged by another owner", key: key, val: sign(forged, "10.77.0.5", nil), want: ErrClaimCert, bootOK: true},
		{name: "certificate of another CLADNet", key: key, val: sign(foreign, "10.77.0.5", nil), want: ErrClaimCert},
		{name: "expired certificate", key: key, val: sign(expiredCert, "10.77.0.5", func(c *Claim) { c.ClaimedAt = now.Add(-2 * time.Hour); c.Expires = now.Add(time.Hour) }), want: ErrClaimCert, bootOK: true},
		{name: "no certificate", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.Cert = nil }), want: ErrMalformedClaim},
		{name: "expired lease", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.ClaimedAt = now.Add(-50 * time.Second); c.Expires = now.Add(-time.Second) }), want: ErrClaimExpired},
		{name: "lease ending now", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.ClaimedAt = now.Add(-time.Minute / 2); c.Expires = now }), want: ErrClaimExpired},
		{name: "lease too long", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.Expires = now.Add(31 * 24 * time.Hour) }), want: ErrLeaseTooLong},
		{name: "claimed before the certificate", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.ClaimedAt = me.cert.NotBefore.Add(-time.Second) }), want: ErrMalformedClaim},
		{name: "claimed after expiry", key: key, val: sign(me, "10.77.0.5", func(c *Claim) { c.ClaimedAt = c.Expires }), want: ErrMalformedClaim},
		{name: "key names another address", key: ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.6")), val: good, want: ErrKeyMismatch},
		{name: "key names another CLADNet", key: ClaimKey(other.Spec.ID, netip.MustParseAddr("10.77.0.5")), val: good, want: ErrKeyMismatch},
		{name: "malformed key", key: "/cbnode/" + o.Spec.ID + "/10.77.0.5", val: good, want: ErrMalformedClaim},
		{name: "address outside the range", key: ClaimKey(o.Spec.ID, netip.MustParseAddr("10.78.0.5")), val: sign(me, "10.78.0.5", nil), want: ErrOutOfRange, bootOK: true},
		{name: "network address", key: ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.0")), val: sign(me, "10.77.0.0", nil), want: ErrOutOfRange, bootOK: true},
		{name: "broadcast address", key: ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.255")), val: sign(me, "10.77.0.255", nil), want: ErrOutOfRange, bootOK: true},
		{name: "oversized", key: key, val: bigJSON, want: ErrClaimTooLarge},
		{name: "empty", key: key, val: nil, want: ErrMalformedClaim},
		{name: "null", key: key, val: []byte("null"), want: ErrMalformedClaim},
		{name: "garbage", key: key, val: []byte("\x00\xffnot json"), want: ErrMalformedClaim},
		{name: "array", key: key, val: []byte("[1,2]"), want: ErrMalformedClaim},
		{name: "truncated", key: key, val: good[:len(good)/2], want: ErrMalformedClaim},
		{name: "trailing data", key: key, val: append(bytes.Clone(good), []byte(` {}`)...), want: ErrMalformedClaim},
		{name: "unknown field", key: key, val: append([]byte(`{"evil":1,`), good[1:]...), want: ErrMalformedClaim},
		{name: "non-canonical peer ID", key: key, val: tampered(func(c *Claim) { c.PeerID = peer.ToCid(me.id).String() }), want: ErrMalformedClaim},
	}
	for _, c := range cases {
		err := member.Validate(c.key, c.val)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: member validator: got %v, want %v", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", c.name, err)
		}
		berr := boot.Validate(c.key, c.val)
		if c.bootOK && berr != nil {
			t.Errorf("%s: bootstrap validator refused what it cannot check: %v", c.name, berr)
		}
		if !c.bootOK && berr == nil {
			t.Errorf("%s: bootstrap validator accepted it", c.name)
		}
		// An invalid record never wins Select, even against nothing else.
		if _, err := member.Select(c.key, [][]byte{c.val}); err == nil {
			t.Errorf("%s: Select accepted an invalid record", c.name)
		}
	}
}

// selectSet is a mix of claims on one address for the Select tests.
type selectSet struct {
	key                      string
	v                        *Validator
	aOld, aNew, aRel         []byte // peer A: seq 1, seq 2, released seq 3
	bEarly, bLater           []byte // peer B's records
	c, cRel                  []byte // peer C: live (same time as D), released
	d                        []byte
	invalidEarliest, garbage []byte
}

func newSelectSet(t *testing.T) selectSet {
	o := testOwner(t, "lab", "10.77.0.0/24")
	now := time.Now()
	ids := []testIdentity{newIdentity(t, o, "a"), newIdentity(t, o, "b"), newIdentity(t, o, "c"), newIdentity(t, o, "d")}
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	ip := "10.77.0.9"
	t0 := now.Add(-30 * time.Second) // after the certificates' NotBefore
	var s selectSet
	s.key = ClaimKey(o.Spec.ID, netip.MustParseAddr(ip))
	s.v = fixedValidator(now, o.Spec)
	_, s.aOld = signedClaim(t, o.Spec, a, ip, t0.Add(1*time.Second), 1, nil)
	_, s.aNew = signedClaim(t, o.Spec, a, ip, t0.Add(1*time.Second), 2, nil)
	_, s.aRel = signedClaim(t, o.Spec, a, ip, t0.Add(1*time.Second), 3, func(c *Claim) { c.Released = true })
	_, s.bEarly = signedClaim(t, o.Spec, b, ip, t0.Add(2*time.Second), 7, nil)
	_, s.bLater = signedClaim(t, o.Spec, b, ip, t0.Add(2*time.Second), 8, nil)
	_, s.c = signedClaim(t, o.Spec, c, ip, t0.Add(3*time.Second), 1, nil)
	_, s.cRel = signedClaim(t, o.Spec, c, ip, t0, 5, func(c *Claim) { c.Released = true })
	_, s.d = signedClaim(t, o.Spec, d, ip, t0.Add(3*time.Second), 1, nil)
	inv, _ := signedClaim(t, o.Spec, d, ip, t0, 9, nil)
	inv.Seq = 10 // breaks the signature
	s.invalidEarliest, _ = inv.Marshal()
	s.garbage = []byte("{garbage")
	return s
}

func (s selectSet) pick(t *testing.T, vals ...[]byte) []byte {
	t.Helper()
	i, err := s.v.Select(s.key, vals)
	if err != nil {
		t.Fatal(err)
	}
	return vals[i]
}

func TestSelectRules(t *testing.T) {
	s := newSelectSet(t)
	lowerID := s.c
	cc, err := ParseClaim(s.c)
	if err != nil {
		t.Fatal(err)
	}
	dc, _ := ParseClaim(s.d)
	cp, _ := cc.Peer()
	dp, _ := dc.Peer()
	if string(dp) < string(cp) {
		lowerID = s.d
	}
	for _, tc := range []struct {
		name string
		vals [][]byte
		want []byte
	}{
		{"same peer: higher seq wins", [][]byte{s.aOld, s.aNew}, s.aNew},
		{"same peer: release supersedes its live claim", [][]byte{s.aNew, s.aRel}, s.aRel},
		{"other peers: earliest claim wins", [][]byte{s.bEarly, s.aNew}, s.aNew},
		{"renewal keeps precedence", [][]byte{s.c, s.bLater}, s.bLater},
		{"tie: lowest peer ID wins", [][]byte{s.c, s.d}, lowerID},
		{"live beats another peer's earlier release", [][]byte{s.cRel, s.aNew}, s.aNew},
		{"stale live claim is superseded by its release", [][]byte{s.aOld, s.aRel, s.d}, s.d},
		{"invalid never wins", [][]byte{s.invalidEarliest, s.garbage, s.aNew}, s.aNew},
		{"duplicates", [][]byte{s.aNew, s.aNew}, s.aNew},
	} {
		if got := s.pick(t, tc.vals...); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: wrong winner", tc.name)
		}
	}
	if _, err := s.v.Select(s.key, nil); err == nil {
		t.Error("Select of no values succeeded")
	}
	if _, err := s.v.Select(s.key, [][]byte{s.garbage, s.invalidEarliest}); err == nil {
		t.Error("Select of only invalid values succeeded")
	}
	// kad-dht keeps a re-put identical record: Select(new, old) must be 0.
	if i, _ := s.v.Select(s.key, [][]byte{s.aNew, s.aNew}); i != 0 {
		t.Errorf("identical records: Select = %d, want 0", i)
	}
}

func TestSelectIsOrderIndependent(t *testing.T) {
	s := newSelectSet(t)
	all := [][]byte{s.aOld, s.aNew, s.aRel, s.bEarly, s.bLater, s.c, s.cRel, s.d, s.invalidEarliest, s.garbage, s.bLater}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 3, 5, 8, len(all)} {
		sub := append([][]byte(nil), all[:n]...)
		var want []byte
		for range 12 {
			rng.Shuffle(len(sub), func(i, j int) { sub[i], sub[j] = sub[j], sub[i] })
			i, err := s.v.Select(s.key, sub)
			if err != nil {
				continue // only invalid values in this subset
			}
			for k := range i {
				if bytes.Equal(sub[k], sub[i]) {
					t.Fatalf("Select returned index %d, but the same value is at %d", i, k)
				}
			}
			if want == nil {
				want = sub[i]
			} else if !bytes.Equal(want, sub[i]) {
				t.Fatalf("subset of %d: the winner depends on the order", n)
			}
		}
	}
	// Pairwise, as kad-dht uses it: both orders agree.
	pairs := [][]byte{s.aOld, s.aRel, s.bEarly, s.c, s.cRel, s.d, s.garbage}
	for _, x := range pairs {
		for _, y := range pairs {
			i, err1 := s.v.Select(s.key, [][]byte{x, y})
			j, err2 := s.v.Select(s.key, [][]byte{y, x})
			if (err1 == nil) != (err2 == nil) {
				t.Fatal("pairwise Select errs in one order only")
			}
			if err1 == nil && !bytes.Equal([][]byte{x, y}[i], [][]byte{y, x}[j]) {
				t.Fatal("pairwise Select depends on the order")
			}
		}
	}
}
