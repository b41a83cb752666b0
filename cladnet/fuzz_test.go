package cladnet

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeToken: DecodeToken never panics, and a token it accepts
// encodes and decodes again to a token whose certificate verifies exactly
// as the first one's did.
func FuzzDecodeToken(f *testing.F) {
	f.Add(golden2Token)
	f.Add("cbnode-token-v1:")
	f.Add("cbnode-token-v1:e30")
	f.Add("not a token")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := DecodeToken(s)
		if err != nil {
			return
		}
		first := tok.Cert.Verify(tok.Spec, "", goldenNow)
		enc, err := tok.Encode()
		if err != nil {
			t.Fatalf("an accepted token does not encode: %v", err)
		}
		back, err := DecodeToken(enc)
		if err != nil {
			t.Fatalf("a re-encoded token does not decode: %v", err)
		}
		if again := back.Cert.Verify(back.Spec, "", goldenNow); (first == nil) != (again == nil) {
			t.Fatalf("verification changed across a round trip: %v, then %v", first, again)
		}
	})
}

// FuzzCertificate: decoding never panics; a decoded certificate re-encodes
// to bytes that decode to the same verdict, and one that verifies under
// the golden CLADNet never verifies once a field is edited.
func FuzzCertificate(f *testing.F) {
	f.Add([]byte(golden2Cert))
	f.Add([]byte(goldenFuture))
	f.Add([]byte(goldenCert))
	f.Add([]byte(`{"signature":""}`))
	f.Add([]byte(`{"cladnetId":"x","cladnetId":"y"}`))
	var spec Spec
	if err := json.Unmarshal([]byte(golden2Spec), &spec); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Certificate
		if json.Unmarshal(b, &c) != nil {
			return
		}
		first := c.Verify(&spec, "", goldenNow)
		_ = c.Fingerprint()
		enc, err := json.Marshal(&c)
		if err != nil {
			t.Fatalf("a decoded certificate does not encode: %v", err)
		}
		var back Certificate
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("a re-encoded certificate does not decode: %v", err)
		}
		if again := back.Verify(&spec, "", goldenNow); (first == nil) != (again == nil) {
			t.Fatalf("verification changed across a round trip: %v, then %v", first, again)
		}
		if first == nil {
			back.HostName += "x"
			if back.Verify(&spec, "", goldenNow) == nil {
				t.Fatal("an edited certificate still verifies")
			}
		}
	})
}
