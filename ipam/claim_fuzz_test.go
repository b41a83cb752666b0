package ipam

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzValidate feeds arbitrary keys and values to the validator: it must
// never panic, and Select must agree with Validate.
func FuzzValidate(f *testing.F) {
	o := testOwner(f, "lab", "10.77.0.0/24")
	me := newIdentity(f, o, "vm1")
	now := time.Now()
	c, good := signedClaim(f, o.Spec, me, "10.77.0.5", now, 1, nil)
	key := ClaimKey(o.Spec.ID, c.Addr())
	f.Add(key, good)
	f.Add(key, []byte(`{"cladnetId":"x","ip":"10.77.0.5","cert":{},"signature":"AA=="}`))
	f.Add(ClaimKey("x", netip.MustParseAddr("1.2.3.4")), []byte("null"))
	f.Add("/cbnode/x/ip/", []byte{0xff})
	v := fixedValidator(now, o.Spec)
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		err := v.Validate(key, val)
		_, serr := v.Select(key, [][]byte{val})
		if (err == nil) != (serr == nil) {
			t.Fatalf("Validate %v but Select %v", err, serr)
		}
	})
}
