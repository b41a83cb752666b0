package cladnet

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func newOwner(t *testing.T, name string) *Owner {
	t.Helper()
	o, err := Create(t.TempDir(), name, "10.77.0.0/24", RuleBasic, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCreateLoadAndFileModes(t *testing.T) {
	dir := t.TempDir()
	o, err := Create(dir, "lab", "", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o.Spec.CIDR != DefaultCIDR || o.Spec.RuleType != RuleBasic {
		t.Fatalf("defaults not applied: %+v", o.Spec)
	}
	if !strings.HasPrefix(o.Spec.ID, "cn") || len(o.Spec.ID) != 18 {
		t.Fatalf("unexpected ID %q", o.Spec.ID)
	}
	for _, f := range []string{ownerKeyFile, specFile} {
		st, err := os.Stat(filepath.Join(dir, "lab", f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	l, err := Load(dir, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.ID != o.Spec.ID || !l.Key.Equal(o.Key) {
		t.Fatal("loaded CLADNet differs from the created one")
	}
	if _, err := Create(dir, "lab", "", "", "", time.Now()); err == nil {
		t.Fatal("Create overwrote an existing CLADNet")
	}
	if _, err := Load(dir, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of a missing CLADNet: %v", err)
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	for _, tc := range []struct{ name, cidr, rule string }{
		{"../x", "", ""},
		{"", "", ""},
		{"ok", "10.0.0.1/24", ""},
		{"ok", "fd00::/64", ""},
		{"ok", "10.0.0.0/31", ""},
		{"ok", "banana", ""},
		{"ok", "", "cheap"},
	} {
		if _, err := Create(t.TempDir(), tc.name, tc.cidr, tc.rule, "", time.Now()); err == nil {
			t.Errorf("Create(%q, %q, %q) succeeded", tc.name, tc.cidr, tc.rule)
		}
	}
}

func TestCertificateVerify(t *testing.T) {
	o := newOwner(t, "a")
	other := newOwner(t, "b")
	_, id := newPeer(t)
	_, id2 := newPeer(t)
	now := time.Now()
	c, err := SignCertificate(o.Key, o.Spec, id, "vm1", []string{"web"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(o.Spec, id, now); err != nil {
		t.Fatalf("valid certificate refused: %v", err)
	}
	if err := c.Verify(o.Spec, id2, now); !errors.Is(err, ErrWrongPeer) {
		t.Errorf("certificate presented by another peer: %v", err)
	}
	if err := c.Verify(other.Spec, id, now); !errors.Is(err, ErrForeignCladnet) {
		t.Errorf("certificate of another CLADNet: %v", err)
	}
	if err := c.Verify(o.Spec, id, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired certificate: %v", err)
	}
	if err := c.Verify(o.Spec, id, now.Add(-time.Hour)); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("not-yet-valid certificate: %v", err)
	}
	// Tampering with any field breaks the signature.
	for _, mut := range []func(c *Certificate){
		func(c *Certificate) { c.HostName = "evil" },
		func(c *Certificate) { c.NotAfter = c.NotAfter.Add(time.Hour * 24 * 365) },
		func(c *Certificate) { c.Groups = append(c.Groups, "admin") },
		func(c *Certificate) { c.PeerID = id2.String() },
		func(c *Certificate) { c.Signature = "AAAA" },
	} {
		cc := *c
		cc.Groups = append([]string(nil), c.Groups...)
		mut(&cc)
		from := id
		if cc.PeerID == id2.String() {
			from = id2
		}
		if err := cc.Verify(o.Spec, from, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered certificate: got %v, want bad signature", err)
		}
	}
	// A certificate signed by a foreign key but claiming our CLADNet ID.
	forged, err := SignCertificate(other.Key, o.Spec, id, "vm1", nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := forged.Verify(o.Spec, id, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged certificate: %v", err)
	}
}

func TestTokenRoundTripAndBadInput(t *testing.T) {
	o := newOwner(t, "a")
	k, id := newPeer(t)
	c, err := SignCertificate(o.Key, o.Spec, id, "vm1", nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok := &Token{Spec: o.Spec, Cert: c, Bootstrap: []string{"/ip4/127.0.0.1/tcp/7460/p2p/" + id.String()}}
	if err := tok.SetPrivateKey(k); err != nil {
		t.Fatal(err)
	}
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeToken(" " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	gk, err := got.PrivateKey()
	if err != nil || !gk.Equals(k) {
		t.Fatalf("key lost in round trip: %v", err)
	}
	if got.Spec.ID != o.Spec.ID || got.Cert.Signature != c.Signature || len(got.Bootstrap) != 1 {
		t.Fatal("token contents changed in round trip")
	}

	// Key not matching the certificate.
	k2, _ := newPeer(t)
	bad := *tok
	_ = bad.SetPrivateKey(k2)
	bs, _ := bad.Encode()

	for name, in := range map[string]string{
		"empty":      "",
		"wrong type": "-----BEGIN CERTIFICATE-----",
		"truncated":  s[:len(s)/2],
		"garbage":    TokenPrefix + "!!!not base64!!!",
		"not json":   TokenPrefix + "bm90IGpzb24",
		"no cert":    TokenPrefix + "eyJzcGVjIjpudWxsfQ",
		"wrong key":  bs,
	} {
		if _, err := DecodeToken(in); err == nil {
			t.Errorf("%s: token accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}

func TestValidateHostName(t *testing.T) {
	for name, ok := range map[string]bool{
		"vm1": true, "VM-1": true, "a": true, strings.Repeat("a", 63): true, "node-abc123": true,
		"": false, "-vm": false, "vm-": false, "vm\t1": false, "vm 1": false, "vm.example": false,
		"vm_1": false, strings.Repeat("a", 64): false, "vm\"1": false, "ümlaut": false,
	} {
		if err := ValidateHostName(name); (err == nil) != ok {
			t.Errorf("ValidateHostName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

func TestValidateRange(t *testing.T) {
	for cidr, ok := range map[string]bool{
		"10.77.0.0/24": true, "10.0.0.0/8": true, "172.16.0.0/12": true, "172.31.255.0/24": true,
		"192.168.0.0/16": true, "100.64.0.0/10": true, "100.100.0.0/16": true,
		"8.8.8.0/24": false, "127.0.0.0/8": false, "169.254.0.0/16": false, "224.0.0.0/24": false,
		"172.32.0.0/16": false, "100.128.0.0/16": false, "0.0.0.0/8": false, "240.0.0.0/8": false,
		"10.0.0.1/24": false, "10.0.0.0/31": false, "fd00::/64": false, "192.168.0.0/15": false,
	} {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateRange(p); (err == nil) != ok {
			t.Errorf("ValidateRange(%s) = %v, want ok %v", cidr, err, ok)
		}
	}
}
