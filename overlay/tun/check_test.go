//go:build linux

package tun

import "testing"

func TestCapEff(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   uint64
		ok     bool
	}{
		{"Name:\tcbnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n", 0x1ffffffffff, true},
		{"CapEff:\t0000000000001000\n", 1 << capNetAdmin, true},
		{"CapEff:\tzz\n", 0, false},
		{"Name:\tx\n", 0, false},
	} {
		got, err := capEff(tc.status)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("capEff(%q) = %#x, %v; want %#x, ok %v", tc.status, got, err, tc.want, tc.ok)
		}
	}
}
