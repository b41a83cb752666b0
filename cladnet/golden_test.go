package cladnet

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// Golden vectors (L4): documents exactly as this version writes them, and
// one as a later version might (members this one does not know). They must
// keep verifying, byte for byte, whatever the struct encoding becomes: a
// certificate lives for a year and crosses rolling upgrades.
const (
	golden2Spec  = `{"cladnetId":"cnmw3am46w5weex4a4","name":"gold2","ipv4AddressSpace":"10.77.0.0/24","ruleType":"basic","createdAt":"2026-01-01T00:00:00Z","ownerKey":"ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ="}`
	golden2Cert  = `{"cladnetId":"cnmw3am46w5weex4a4","peerId":"12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK","hostName":"gold-vm","notBefore":"2025-12-31T23:59:00Z","notAfter":"2125-12-08T00:00:00Z","groups":["web","db"],"ip":"10.77.0.9","signature":"7E1bexHI0iETB0E7thk/LBrgK8equ9FOKfv4qYw7tTnNseJJrn7KipygfEXDaPwgLQ7xOWGERCcaoSeF+EWMAQ=="}`
	golden2Token = `cbnode-token-v1:eyJzcGVjIjp7ImNsYWRuZXRJZCI6ImNubXczYW00Nnc1d2VleDRhNCIsIm5hbWUiOiJnb2xkMiIsImlwdjRBZGRyZXNzU3BhY2UiOiIxMC43Ny4wLjAvMjQiLCJydWxlVHlwZSI6ImJhc2ljIiwiY3JlYXRlZEF0IjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJvd25lcktleSI6ImViVldMby9tVlBsQWVMRVM2S21McDVBZmhUcm1sYjdYNE9PUkM2MEVsbVE9In0sImNlcnQiOnsiY2xhZG5ldElkIjoiY25tdzNhbTQ2dzV3ZWV4NGE0IiwicGVlcklkIjoiMTJEM0tvb1dBY0I2dW9IdUFQeWZzWWN3bllUcUdOdDJiaVBtU212YkJhbTljd21hd2d6SyIsImhvc3ROYW1lIjoiZ29sZC12bSIsIm5vdEJlZm9yZSI6IjIwMjUtMTItMzFUMjM6NTk6MDBaIiwibm90QWZ0ZXIiOiIyMTI1LTEyLTA4VDAwOjAwOjAwWiIsImdyb3VwcyI6WyJ3ZWIiLCJkYiJdLCJpcCI6IjEwLjc3LjAuOSIsInNpZ25hdHVyZSI6IjdFMWJleEhJMGlFVEIwRTd0aGsvTEJyZ0s4ZXF1OUZPS2Z2NHFZdzd0VG5Oc2VKSnJuN0tpcHlnZkVYRGFQd2dMUTd4T1dHRVJDY2FvU2VGK0VXTUFRPT0ifSwiYm9vdHN0cmFwIjpbIi9pcDQvMTI3LjAuMC4xL3RjcC83NDYwL3AycC8xMkQzS29vV0FjQjZ1b0h1QVB5ZnNZY3duWVRxR050MmJpUG1TbXZiQmFtOWN3bWF3Z3pLIl19`
	// goldenFuture has members no version knows yet ("tags",
	// "maxAddresses"), signed by golden2Spec's owner as a later version
	// would: over its exact members with the signature blanked.
	goldenFuture = `{"cladnetId":"cnmw3am46w5weex4a4","peerId":"12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK","hostName":"future-vm","notBefore":"2026-01-01T00:00:00Z","notAfter":"2126-01-01T00:00:00Z","tags":{"tier":"gold"},"maxAddresses":2,"signature":"7m35MllFDE4SCtEYnAtgoJJ8TOtVRghgNLmeg5MzaSTb6WiLH50FwoY2q/lFjiejQfg3+i8OsjL34b27G1bWBQ=="}`
)

var goldenNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func goldenSpec2(t *testing.T) *Spec {
	t.Helper()
	var s Spec
	if err := json.Unmarshal([]byte(golden2Spec), &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestGoldenCertificateAndToken(t *testing.T) {
	spec := goldenSpec2(t)
	var c Certificate
	if err := json.Unmarshal([]byte(golden2Cert), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(spec, "", goldenNow); err != nil {
		t.Fatalf("golden certificate: %v", err)
	}
	if c.BoundIP().String() != "10.77.0.9" || len(c.Groups) != 2 {
		t.Fatalf("golden certificate fields: %+v", c)
	}
	if b, _ := json.Marshal(&c); string(b) != golden2Cert {
		t.Fatalf("re-encoded certificate differs:\n%s\n%s", b, golden2Cert)
	}
	// Revocation lists name certificates by this fingerprint.
	if got := c.Fingerprint(); got != "ecc8827b0ab7f11e23ff32654502b326e07ff534ef578ea69441c6c3513f698c" {
		t.Fatalf("fingerprint %s changed", got)
	}
	tok, err := DecodeToken(golden2Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Cert.Verify(tok.Spec, "", goldenNow); err != nil {
		t.Fatalf("golden token's certificate: %v", err)
	}
	if s, err := tok.Encode(); err != nil || s != golden2Token {
		t.Fatalf("re-encoded token differs (%v)", err)
	}
	// An edited field is not covered by the signature.
	c.HostName = "other"
	if err := c.Verify(spec, "", goldenNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("edited golden certificate: %v", err)
	}
}

// A certificate with members this version does not know verifies over its
// exact bytes and travels unchanged inside tokens (an older node reading
// a newer operator's certificate during a rolling upgrade).
func TestFutureCertificateVerifies(t *testing.T) {
	spec := goldenSpec2(t)
	var c Certificate
	if err := json.Unmarshal([]byte(goldenFuture), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(spec, "", goldenNow); err != nil {
		t.Fatalf("a certificate with unknown members does not verify: %v", err)
	}
	tok := &Token{Spec: spec, Cert: &c}
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Cert.Verify(spec, "", goldenNow); err != nil {
		t.Fatalf("after a token round trip: %v", err)
	}
	if b, _ := json.Marshal(back.Cert); string(b) != goldenFuture {
		t.Fatalf("the certificate lost its exact bytes in the token:\n%s", b)
	}
	back.Cert.NotAfter = back.Cert.NotAfter.Add(time.Hour)
	if err := back.Cert.Verify(spec, "", goldenNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("an extended NotAfter still verifies: %v", err)
	}
}

// A revocation list with members this version does not know verifies over
// its exact bytes too (signed by golden2Spec's owner key, seed 1..32).
func TestFutureRevocationsVerify(t *testing.T) {
	spec := goldenSpec2(t)
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	owner := ed25519.NewKeyFromSeed(seed)
	body := `{"cladnetId":"cnmw3am46w5weex4a4","version":7,"issuedAt":"2026-05-01T00:00:00Z","entries":[{"peerId":"12D3KooWAcB6uoHuAPyfsYcwnYTqGNt2biPmSmvbBam9cwmawgzK","revokedAt":"2026-05-01T00:00:00Z","scope":"all"}],"policy":{"grace":"1h"}}`
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(owner, append([]byte(revocationsDomain), body...)))
	doc := body[:len(body)-1] + `,"signature":"` + sig + `"}`
	r, err := ParseRevocations([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(spec); err != nil {
		t.Fatalf("a list with unknown members does not verify: %v", err)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseRevocations(b)
	if err != nil || again.Verify(spec) != nil {
		t.Fatalf("after the file round trip: %v", err)
	}
	r.Version++
	if err := r.Verify(spec); !errors.Is(err, ErrRevocationsBadSignature) {
		t.Fatalf("a bumped version still verifies: %v", err)
	}
}
